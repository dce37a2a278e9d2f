//! The data set: deterministic generation (a pure function of [`DatasetParams`]),
//! compact storage, canonical JSON rendering (SPEC §2), and the `(updated_at, id)`
//! order used by paging, counts and webhooks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::prng::SplitMix64;

/// Parameters of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetParams {
    pub seed: u64,
    pub learners: u32,
    pub departments: u32,
    pub courses: u32,
    pub enrollments_per_learner: u32,
}

impl Default for DatasetParams {
    fn default() -> Self {
        DatasetParams { seed: 1, learners: 100, departments: 5, courses: 10, enrollments_per_learner: 3 }
    }
}

/// Upper bounds accepted by the generator.
pub const MAX_LEARNERS: u32 = 5_000_000;
pub const MAX_DEPARTMENTS: u32 = 10_000;
pub const MAX_COURSES: u32 = 100_000;
pub const MAX_ENROLLMENTS: u64 = 20_000_000;

/// 2026-01-01T00:00:00Z in Unix milliseconds: the start of generated history.
pub const EPOCH_MS: i64 = 1_767_225_600_000;
const DAY_MS: i64 = 86_400_000;

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Donald",
    "Hedy",
    "John",
    "Katherine",
    "Tim",
    "Sophie",
    "Niklaus",
    "Karen",
    "Guido",
    "Anita",
    "Bjarne",
    "Shafi",
    "Leslie",
    "Mary",
    "James",
    "Joan",
    "Brian",
    "Evelyn",
    "Robin",
    "Carol",
    "Vint",
    "Lynn",
    "Bob",
    "Jean",
    "Ivan",
    "Adele",
    "Peter",
    "Annie",
    "Fran",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Knuth",
    "Lamarr",
    "McCarthy",
    "Johnson",
    "Berners",
    "Wilson",
    "Wirth",
    "Jones",
    "Rossum",
    "Borg",
    "Stroustrup",
    "Goldwasser",
    "Lamport",
    "Keller",
    "Gosling",
    "Clarke",
    "Kernighan",
    "Boyd",
    "Milner",
    "Shaw",
    "Cerf",
    "Conway",
    "Kahn",
    "Sammet",
    "Sutherland",
    "Goldberg",
    "Naur",
    "Easley",
    "Allen",
];
const DOMAINS: &[&str] = &["example.com", "example.org", "example.net", "corp.example.com"];
const DEPARTMENT_NAMES: &[&str] = &[
    "Sales",
    "Engineering",
    "Support",
    "Marketing",
    "Finance",
    "Operations",
    "Legal",
    "Human Resources",
    "Product",
    "Partners",
    "Training",
    "Field Services",
];
const COURSE_TOPICS: &[&str] = &[
    "Onboarding",
    "Product Fundamentals",
    "Security Awareness",
    "Advanced Administration",
    "Customer Success",
    "Data Privacy",
    "Leadership",
    "Compliance",
    "Integrations",
    "Reporting",
    "Certification Prep",
    "Workplace Safety",
];
const TITLES: &[&str] = &["Engineer", "Manager", "Analyst", "Consultant", "Specialist", "Director"];
const LOCATIONS: &[&str] = &["Berlin", "London", "New York", "Singapore", "Sydney", "Toronto"];

/// Enrollment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Enrolled,
    InProgress,
    Completed,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enrolled => "enrolled",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DepartmentRow {
    pub name: String,
    pub parent: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct CourseRow {
    pub title: String,
}

/// A learner, stored compactly (names are indexes into the tables).
#[derive(Debug, Clone, Copy)]
pub struct LearnerRow {
    pub first: u8,
    pub last: u8,
    pub domain: u8,
    pub title: u8,
    pub location: u8,
    pub active: bool,
    pub department: u32,
    pub updated_at: i64,
}

/// An enrollment, stored compactly.
#[derive(Debug, Clone, Copy)]
pub struct EnrollmentRow {
    pub learner: u32,
    pub course: u32,
    pub status: Status,
    pub progress: u8,
    /// Score in tenths of a point.
    pub score_tenths: Option<u16>,
    pub enrolled_at: i64,
    pub completed_at: Option<i64>,
    pub updated_at: i64,
}

/// A whole generated data set plus its sort orders.
#[derive(Debug, Default)]
pub struct Dataset {
    pub params: Option<DatasetParams>,
    pub departments: Vec<DepartmentRow>,
    pub courses: Vec<CourseRow>,
    pub learners: Vec<LearnerRow>,
    pub enrollments: Vec<EnrollmentRow>,
    /// Learner indexes sorted by (updated_at, id).
    pub learners_order: Vec<u32>,
    /// Enrollment indexes sorted by (updated_at, id).
    pub enrollments_order: Vec<u32>,
}

/// Why parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub String);

impl DatasetParams {
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.learners > MAX_LEARNERS {
            return Err(ParamError(format!("learners must be at most {MAX_LEARNERS}")));
        }
        if self.departments > MAX_DEPARTMENTS {
            return Err(ParamError(format!("departments must be at most {MAX_DEPARTMENTS}")));
        }
        if self.courses > MAX_COURSES {
            return Err(ParamError(format!("courses must be at most {MAX_COURSES}")));
        }
        if self.enrollments_per_learner > 0 && self.courses == 0 {
            return Err(ParamError("enrollments need at least one course".to_owned()));
        }
        if self.learners > 0 && self.departments == 0 {
            return Err(ParamError("learners need at least one department".to_owned()));
        }
        let total = u64::from(self.learners) * u64::from(self.enrollments_per_learner);
        if total > MAX_ENROLLMENTS {
            return Err(ParamError(format!("learners * enrollments_per_learner must be at most {MAX_ENROLLMENTS}")));
        }
        Ok(())
    }
}

const KIND_DEPARTMENT: u64 = 1;
const KIND_LEARNER: u64 = 3;
const KIND_ENROLLMENT: u64 = 4;

fn pick(g: &mut SplitMix64, n: usize) -> u8 {
    u8::try_from(g.below(n as u64)).unwrap_or(0)
}

/// Generates the data set for `p` (call [`DatasetParams::validate`] first).
pub fn generate(p: DatasetParams) -> Dataset {
    let departments: Vec<DepartmentRow> = (0..p.departments)
        .map(|i| {
            let mut g = SplitMix64::for_entity(p.seed, KIND_DEPARTMENT, u64::from(i));
            let base = DEPARTMENT_NAMES[i as usize % DEPARTMENT_NAMES.len()];
            let round = i as usize / DEPARTMENT_NAMES.len();
            let name = if round == 0 { base.to_owned() } else { format!("{base} {}", round + 1) };
            let roots = (p.departments / 4).max(1);
            let parent = (i >= roots).then(|| u32::try_from(g.below(u64::from(roots))).unwrap_or(0));
            DepartmentRow { name, parent }
        })
        .collect();

    let courses: Vec<CourseRow> = (0..p.courses)
        .map(|i| {
            let topic = COURSE_TOPICS[i as usize % COURSE_TOPICS.len()];
            let level = i as usize / COURSE_TOPICS.len() + 1;
            CourseRow { title: format!("{topic} {level}{}", ["01", "02", "03"][i as usize % 3]) }
        })
        .collect();

    let learners: Vec<LearnerRow> = (0..p.learners)
        .map(|i| {
            let mut g = SplitMix64::for_entity(p.seed, KIND_LEARNER, u64::from(i));
            LearnerRow {
                first: pick(&mut g, FIRST_NAMES.len()),
                last: pick(&mut g, LAST_NAMES.len()),
                domain: pick(&mut g, DOMAINS.len()),
                title: pick(&mut g, TITLES.len()),
                location: pick(&mut g, LOCATIONS.len()),
                active: !g.chance(5),
                department: u32::try_from(g.below(u64::from(p.departments))).unwrap_or(0),
                updated_at: EPOCH_MS + 1000 * i64::try_from(g.below(120 * 86_400)).unwrap_or(0),
            }
        })
        .collect();

    let per = p.enrollments_per_learner;
    let total = (p.learners as usize).saturating_mul(per as usize);
    let mut enrollments = Vec::with_capacity(total);
    for learner in 0..p.learners {
        for k in 0..per {
            let index = u64::from(learner) * u64::from(per) + u64::from(k);
            let mut g = SplitMix64::for_entity(p.seed, KIND_ENROLLMENT, index);
            // Distinct courses per learner while there are enough of them.
            let course = if per <= p.courses {
                let start = g.below(u64::from(p.courses));
                u32::try_from((start + u64::from(k) * u64::from(p.courses / per.max(1)).max(1)) % u64::from(p.courses))
                    .unwrap_or(0)
            } else {
                u32::try_from(g.below(u64::from(p.courses))).unwrap_or(0)
            };
            let enrolled_at = EPOCH_MS + 1000 * i64::try_from(g.below(120 * 86_400)).unwrap_or(0);
            let roll = g.below(100);
            let status = match roll {
                0..30 => Status::Enrolled,
                30..65 => Status::InProgress,
                65..95 => Status::Completed,
                _ => Status::Expired,
            };
            let (progress, score_tenths, completed_at, updated_at) = match status {
                Status::Enrolled => (0, None, None, enrolled_at),
                Status::InProgress => {
                    let progress = u8::try_from(1 + g.below(99)).unwrap_or(50);
                    let later = 1000 * i64::try_from(1 + g.below(30 * 86_400)).unwrap_or(1);
                    (progress, None, None, enrolled_at + later)
                }
                Status::Completed => {
                    let score = u16::try_from(500 + g.below(501)).unwrap_or(1000);
                    let later = 1000 * i64::try_from(3600 + g.below(30 * 86_400)).unwrap_or(3600);
                    let done = enrolled_at + later;
                    (100, Some(score), Some(done), done)
                }
                Status::Expired => {
                    let progress = u8::try_from(g.below(100)).unwrap_or(0);
                    (progress, None, None, enrolled_at + 90 * DAY_MS)
                }
            };
            enrollments.push(EnrollmentRow {
                learner,
                course,
                status,
                progress,
                score_tenths,
                enrolled_at,
                completed_at,
                updated_at,
            });
        }
    }

    let mut learners_order: Vec<u32> = (0..p.learners).collect();
    learners_order.sort_unstable_by_key(|i| (learners.get(*i as usize).map_or(0, |l| l.updated_at), *i));
    let n = u32::try_from(enrollments.len()).unwrap_or(u32::MAX);
    let mut enrollments_order: Vec<u32> = (0..n).collect();
    enrollments_order.sort_unstable_by_key(|i| (enrollments.get(*i as usize).map_or(0, |e| e.updated_at), *i));

    Dataset { params: Some(p), departments, courses, learners, enrollments, learners_order, enrollments_order }
}

// ---------------------------------------------------------------- ids and times

pub fn learner_id(i: u32) -> String {
    format!("L{i:06}")
}

pub fn enrollment_id(i: u32) -> String {
    format!("E{i:07}")
}

pub fn department_id(i: u32) -> String {
    format!("D{i:02}")
}

pub fn course_id(i: u32) -> String {
    format!("C{i:03}")
}

/// Parses an id with `prefix` back into its index.
pub fn parse_id(id: &str, prefix: char) -> Option<u32> {
    let rest = id.strip_prefix(prefix)?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// `2026-05-12T10:00:00.000Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let rem = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let h = rem / 3_600_000;
    let min = rem / 60_000 % 60;
    let s = rem / 1000 % 60;
    let milli = rem % 1000;
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Howard Hinnant's days → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses an RFC 3339 timestamp into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

// ---------------------------------------------------------------- rendering

#[derive(Debug, Serialize)]
pub struct Learner {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub department_id: Option<String>,
    pub fields: BTreeMap<String, String>,
    pub active: bool,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Course {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Enrollment {
    pub id: String,
    pub learner_id: String,
    pub course_id: String,
    pub course_title: String,
    pub status: &'static str,
    pub progress_pct: u8,
    pub score: Option<f64>,
    pub enrolled_at: String,
    pub completed_at: Option<String>,
    pub updated_at: String,
}

impl Dataset {
    pub fn learner(&self, i: u32) -> Option<Learner> {
        let l = self.learners.get(i as usize)?;
        let first = FIRST_NAMES.get(l.first as usize).copied().unwrap_or("Ada");
        let last = LAST_NAMES.get(l.last as usize).copied().unwrap_or("Lovelace");
        let domain = DOMAINS.get(l.domain as usize).copied().unwrap_or("example.com");
        let mut fields = BTreeMap::new();
        fields.insert("title".to_owned(), TITLES.get(l.title as usize).copied().unwrap_or("Engineer").to_owned());
        fields
            .insert("location".to_owned(), LOCATIONS.get(l.location as usize).copied().unwrap_or("Berlin").to_owned());
        fields.insert("employee_number".to_owned(), format!("EMP{:06}", i));
        Some(Learner {
            id: learner_id(i),
            email: format!("{}.{}{}@{domain}", first.to_ascii_lowercase(), last.to_ascii_lowercase(), i),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            department_id: (!self.departments.is_empty()).then(|| department_id(l.department)),
            fields,
            active: l.active,
            updated_at: rfc3339_ms(l.updated_at),
        })
    }

    pub fn department(&self, i: u32) -> Option<Department> {
        let d = self.departments.get(i as usize)?;
        Some(Department { id: department_id(i), name: d.name.clone(), parent_id: d.parent.map(department_id) })
    }

    pub fn course(&self, i: u32) -> Option<Course> {
        let c = self.courses.get(i as usize)?;
        Some(Course { id: course_id(i), title: c.title.clone() })
    }

    pub fn enrollment(&self, i: u32) -> Option<Enrollment> {
        let e = self.enrollments.get(i as usize)?;
        Some(Enrollment {
            id: enrollment_id(i),
            learner_id: learner_id(e.learner),
            course_id: course_id(e.course),
            course_title: self.courses.get(e.course as usize).map(|c| c.title.clone()).unwrap_or_default(),
            status: e.status.as_str(),
            progress_pct: e.progress,
            score: e.score_tenths.map(|t| f64::from(t) / 10.0),
            enrolled_at: rfc3339_ms(e.enrolled_at),
            completed_at: e.completed_at.map(rfc3339_ms),
            updated_at: rfc3339_ms(e.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms(EPOCH_MS), "2026-01-01T00:00:00.000Z");
        let t = parse_rfc3339("2026-05-12T10:00:00.000Z").unwrap();
        assert_eq!(rfc3339_ms(t), "2026-05-12T10:00:00.000Z");
        assert_eq!(rfc3339_ms(t + 1), "2026-05-12T10:00:00.001Z");
        assert_eq!(parse_rfc3339("2026-05-12T12:00:00+02:00"), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn generation_is_a_pure_function() {
        let p = DatasetParams { seed: 42, learners: 50, departments: 14, courses: 7, enrollments_per_learner: 4 };
        let a = generate(p);
        let b = generate(p);
        assert_eq!(a.enrollments.len(), 200);
        for i in 0..200 {
            let (x, y) = (a.enrollment(i).unwrap(), b.enrollment(i).unwrap());
            assert_eq!(serde_json::to_string(&x).unwrap(), serde_json::to_string(&y).unwrap());
            if x.status == "completed" {
                assert_eq!(x.completed_at.as_deref(), Some(x.updated_at.as_str()));
                assert!(x.score.is_some());
            }
        }
        assert_eq!(a.department(12).unwrap().name, "Sales 2");
        assert_eq!(parse_id("L000123", 'L'), Some(123));
        assert_eq!(parse_id("L12x", 'L'), None);
    }
}
