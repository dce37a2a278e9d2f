//! The data set: deterministic generation (a pure function of [`DatasetParams`]),
//! compact storage, canonical JSON rendering (SPEC §2), and the `(updated_at, id)`
//! order used by paging, counts and webhooks.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
    /// Learners created or changed through the API since generation, kept on
    /// top of the compact rows (generation never pays for them).
    pub learner_changes: RwLock<LearnerChanges>,
    /// Enrollments moved on since generation (`POST
    /// /__emulator/enrollments/advance`), every version kept: see
    /// [`crate::enrollments`].
    pub enrollment_changes: RwLock<crate::enrollments::EnrollmentChanges>,
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
            // A forest: the first quarter are roots, the first two others form a
            // chain under D00 (so a tree of depth >= 3 exists from 3 departments
            // on), every later one hangs under any earlier department.
            let roots = (p.departments / 4).max(1);
            let parent = match i {
                i if i < roots => None,
                i if i == roots => Some(0),
                i if i == roots + 1 => Some(roots),
                i => Some(u32::try_from(g.below(u64::from(i))).unwrap_or(0)),
            };
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

    Dataset {
        params: Some(p),
        departments,
        courses,
        learners,
        enrollments,
        learners_order,
        enrollments_order,
        learner_changes: RwLock::default(),
        enrollment_changes: RwLock::default(),
    }
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

/// A learner kept whole once it has been created or changed through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnerRecord {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub department_id: Option<String>,
    pub fields: BTreeMap<String, String>,
    pub active: bool,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl LearnerRecord {
    pub fn render(&self, index: u32) -> Learner {
        Learner {
            id: learner_id(index),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            department_id: self.department_id.clone(),
            fields: self.fields.clone(),
            active: self.active,
            updated_at: rfc3339_ms(self.updated_at),
        }
    }
}

/// A validated `POST /api/v1/learners` body (without `send_welcome_email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLearner {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub department_id: Option<String>,
    pub fields: BTreeMap<String, String>,
    pub active: bool,
}

/// A validated `PATCH /api/v1/learners/{id}` body: absent members stay as
/// they are; `fields` is merged (a `null` value removes the key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LearnerPatch {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `Some(None)` clears the department.
    pub department_id: Option<Option<String>>,
    pub fields: BTreeMap<String, Option<String>>,
    pub active: Option<bool>,
}

impl LearnerPatch {
    pub fn apply(self, r: &mut LearnerRecord) {
        if let Some(v) = self.email {
            r.email = v;
        }
        if let Some(v) = self.first_name {
            r.first_name = v;
        }
        if let Some(v) = self.last_name {
            r.last_name = v;
        }
        if let Some(v) = self.department_id {
            r.department_id = v;
        }
        for (k, v) in self.fields {
            match v {
                Some(v) => r.fields.insert(k, v),
                None => r.fields.remove(&k),
            };
        }
        if let Some(v) = self.active {
            r.active = v;
        }
    }
}

/// Learners created or changed through the API, on top of the generated rows,
/// with the indexes imports match on, the groups and their memberships, and
/// the welcome emails sent.
#[derive(Debug, Default)]
pub struct LearnerChanges {
    /// Current state of every changed or created learner, by index.
    records: HashMap<u32, LearnerRecord>,
    /// `(updated_at, index)` of every record above: the end of the paging order.
    tail: BTreeSet<(i64, u32)>,
    /// Learners created (indexes follow the generated ones).
    created: u32,
    /// The latest stamp handed out.
    last_stamp: i64,
    /// Lowercase email → the records above with it. Generated learners that
    /// were never changed are found from their email alone (it carries their
    /// index: see [`Dataset::generated_with_email`]), so generation pays nothing.
    by_email: HashMap<String, Vec<u32>>,
    /// `fields.external_id` → the records above with it (generated learners
    /// have none).
    by_external_id: HashMap<String, Vec<u32>>,
    groups: Groups,
    /// Learners sent a welcome email, in order.
    welcome: Vec<u32>,
}

fn index_add(index: &mut HashMap<String, Vec<u32>>, key: String, i: u32) {
    index.entry(key).or_default().push(i);
}

fn index_remove(index: &mut HashMap<String, Vec<u32>>, key: &str, i: u32) {
    if let Some(v) = index.get_mut(key) {
        v.retain(|x| *x != i);
        if v.is_empty() {
            index.remove(key);
        }
    }
}

impl LearnerChanges {
    /// Stores `record` as learner `i`'s current state, keeping the paging
    /// tail and the indexes in step.
    fn put(&mut self, i: u32, record: LearnerRecord) {
        if let Some(old) = self.records.remove(&i) {
            self.tail.remove(&(old.updated_at, i));
            index_remove(&mut self.by_email, &old.email.to_lowercase(), i);
            if let Some(x) = old.fields.get(EXTERNAL_ID_FIELD) {
                index_remove(&mut self.by_external_id, x, i);
            }
        }
        index_add(&mut self.by_email, record.email.to_lowercase(), i);
        if let Some(x) = record.fields.get(EXTERNAL_ID_FIELD) {
            index_add(&mut self.by_external_id, x.clone(), i);
        }
        self.tail.insert((record.updated_at, i));
        self.records.insert(i, record);
    }

    /// The learner with this external id (the lowest index if several).
    fn with_external_id(&self, external_id: &str) -> Option<u32> {
        self.by_external_id.get(external_id).and_then(|v| v.iter().min().copied())
    }
}

/// The custom field an import's external id is kept in.
pub const EXTERNAL_ID_FIELD: &str = "external_id";

/// Groups by index (ids `G0000`, …) and memberships both ways.
#[derive(Debug, Default)]
struct Groups {
    names: Vec<String>,
    /// Lowercase name → index: names are unique case-insensitively.
    by_name: HashMap<String, u32>,
    /// Group index → its learners.
    members: Vec<BTreeSet<u32>>,
    /// Learner index → its groups.
    of_learner: HashMap<u32, BTreeSet<u32>>,
}

impl Groups {
    fn find(&self, name: &str) -> Option<u32> {
        self.by_name.get(&name.to_lowercase()).copied()
    }

    fn create(&mut self, name: &str) -> u32 {
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_owned());
        self.members.push(BTreeSet::new());
        self.by_name.insert(name.to_lowercase(), i);
        i
    }

    /// The groups with these names, created when missing (each once).
    fn ensure(&mut self, names: &[String], created: &mut u64) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::with_capacity(names.len());
        for name in names {
            let g = match self.find(name) {
                Some(g) => g,
                None => {
                    *created += 1;
                    self.create(name)
                }
            };
            if !out.contains(&g) {
                out.push(g);
            }
        }
        out
    }

    /// Adds learner `l` to group `g`; false when it was a member already.
    fn add(&mut self, g: u32, l: u32) -> bool {
        let Some(members) = self.members.get_mut(g as usize) else { return false };
        self.of_learner.entry(l).or_default().insert(g);
        members.insert(l)
    }

    /// Removes learner `l` from group `g`; false when it was no member.
    fn remove(&mut self, g: u32, l: u32) -> bool {
        let removed = self.members.get_mut(g as usize).is_some_and(|m| m.remove(&l));
        if let Some(set) = self.of_learner.get_mut(&l) {
            set.remove(&g);
            if set.is_empty() {
                self.of_learner.remove(&l);
            }
        }
        removed
    }

    /// Makes `l` a member of `targets` (and, with `remove_missing`, of
    /// nothing else): `(added, removed)`.
    fn set_memberships(&mut self, l: u32, targets: &[u32], remove_missing: bool) -> (u64, u64) {
        let mut added = 0;
        for g in targets {
            if self.add(*g, l) {
                added += 1;
            }
        }
        let mut removed = 0;
        if remove_missing {
            let gone: Vec<u32> = self
                .of_learner
                .get(&l)
                .map(|set| set.iter().copied().filter(|g| !targets.contains(g)).collect())
                .unwrap_or_default();
            for g in gone {
                if self.remove(g, l) {
                    removed += 1;
                }
            }
        }
        (added, removed)
    }

    fn render(&self, g: u32) -> Option<Group> {
        let name = self.names.get(g as usize)?;
        let member_count = self.members.get(g as usize).map_or(0, BTreeSet::len);
        Some(Group { id: group_id(g), name: name.clone(), member_count })
    }
}

/// A group as the API renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub member_count: usize,
}

pub fn group_id(i: u32) -> String {
    format!("G{i:04}")
}

/// A validated item of `POST /api/v1/learners/upsert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertItem {
    pub external_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `None`: the department stays as it is (a created learner has none).
    pub department_id: Option<String>,
    /// Merged into the learner's fields (keys not named stay).
    pub fields: BTreeMap<String, String>,
    pub active: bool,
    /// Group names (`None`: memberships untouched).
    pub groups: Option<Vec<String>>,
}

/// How a batch of upserts is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertOptions {
    /// Welcome email for the learners created.
    pub send_welcome_email: bool,
    /// With `groups`, also leave the groups not listed.
    pub remove_missing_groups: bool,
}

/// What an upsert did to one learner (by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    Created(u32),
    /// The record or its memberships changed: stamped anew.
    Updated(u32),
    /// Already as asked: not stamped.
    Unchanged(u32),
    /// Nothing changed: the email belongs to learners linked to other
    /// external ids.
    Conflict(String),
}

/// What a deactivation by external id did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deactivated {
    Deactivated(u32),
    AlreadyInactive(u32),
    NotFound,
}

/// Counters of a batch of writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub memberships_added: u64,
    pub memberships_removed: u64,
    pub groups_created: u64,
    pub welcome_emails: u64,
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
    /// The learner with index `i` as the API renders it now.
    pub fn learner(&self, i: u32) -> Option<Learner> {
        self.learner_record_in(&self.changes(), i).map(|r| r.render(i))
    }

    /// The learners with these indexes (unknown ones absent), in this order.
    pub fn learners_by_index(&self, indexes: &[u32]) -> Vec<Learner> {
        let changes = self.changes();
        indexes.iter().filter_map(|i| self.learner_record_in(&changes, *i).map(|r| r.render(*i))).collect()
    }

    /// Learners generated plus learners created through the API.
    pub fn learner_count(&self) -> usize {
        self.learners.len().saturating_add(self.changes().created as usize)
    }

    /// The current state of learner `i`.
    pub fn learner_record(&self, i: u32) -> Option<LearnerRecord> {
        self.learner_record_in(&self.changes(), i)
    }

    fn changes(&self) -> RwLockReadGuard<'_, LearnerChanges> {
        self.learner_changes.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn changes_mut(&self) -> RwLockWriteGuard<'_, LearnerChanges> {
        self.learner_changes.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn learner_record_in(&self, changes: &LearnerChanges, i: u32) -> Option<LearnerRecord> {
        match changes.records.get(&i) {
            Some(r) => Some(r.clone()),
            None => self.generated_learner(i),
        }
    }

    fn names_of(l: &LearnerRow) -> (&'static str, &'static str, &'static str) {
        let first = FIRST_NAMES.get(l.first as usize).copied().unwrap_or("Ada");
        let last = LAST_NAMES.get(l.last as usize).copied().unwrap_or("Lovelace");
        let domain = DOMAINS.get(l.domain as usize).copied().unwrap_or("example.com");
        (first, last, domain)
    }

    /// The email learner `i` was generated with (lowercase).
    fn generated_email(&self, i: u32) -> Option<String> {
        let (first, last, domain) = Self::names_of(self.learners.get(i as usize)?);
        Some(format!("{}.{}{}@{domain}", first.to_ascii_lowercase(), last.to_ascii_lowercase(), i))
    }

    /// The generated, never changed learner whose email is `lower`: its
    /// index is the number ending the local part.
    fn generated_with_email(&self, changes: &LearnerChanges, lower: &str) -> Option<u32> {
        let local = lower.split_once('@')?.0;
        let digits = local.bytes().rev().take_while(u8::is_ascii_digit).count();
        let i: u32 = local.get(local.len() - digits..)?.parse().ok()?;
        (!changes.records.contains_key(&i) && self.generated_email(i)? == lower).then_some(i)
    }

    /// Every learner whose current email is `lower` (case-insensitively),
    /// in index order.
    fn with_email(&self, changes: &LearnerChanges, lower: &str) -> Vec<u32> {
        let mut out: Vec<u32> = changes.by_email.get(lower).cloned().unwrap_or_default();
        out.extend(self.generated_with_email(changes, lower));
        out.sort_unstable();
        out
    }

    /// Learner `i` as generated (ignoring changes).
    fn generated_learner(&self, i: u32) -> Option<LearnerRecord> {
        let l = self.learners.get(i as usize)?;
        let (first, last, domain) = Self::names_of(l);
        let mut fields = BTreeMap::new();
        fields.insert("title".to_owned(), TITLES.get(l.title as usize).copied().unwrap_or("Engineer").to_owned());
        fields
            .insert("location".to_owned(), LOCATIONS.get(l.location as usize).copied().unwrap_or("Berlin").to_owned());
        fields.insert("employee_number".to_owned(), format!("EMP{:06}", i));
        Some(LearnerRecord {
            email: format!("{}.{}{}@{domain}", first.to_ascii_lowercase(), last.to_ascii_lowercase(), i),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            department_id: (!self.departments.is_empty()).then(|| department_id(l.department)),
            fields,
            active: l.active,
            updated_at: l.updated_at,
        })
    }

    /// Whether `id` names a department of this data set.
    pub fn has_department(&self, id: &str) -> bool {
        parse_id(id, 'D').is_some_and(|i| (i as usize) < self.departments.len() && department_id(i) == id)
    }

    /// The index of the learner `id` names, if it is one of this data set's.
    pub fn learner_index(&self, id: &str) -> Option<u32> {
        let i = parse_id(id, 'L').filter(|i| learner_id(*i) == id)?;
        ((i as usize) < self.learner_count()).then_some(i)
    }

    /// One page of learners in `(updated_at, index)` order: those with
    /// `updated_at >= since` and a key after `after`, at most `limit`; with the
    /// key of the last one when more follow.
    pub fn learners_page(
        &self,
        since: Option<i64>,
        after: Option<(i64, u32)>,
        limit: usize,
    ) -> (Vec<Learner>, Option<(i64, u32)>) {
        let changes = self.changes();
        let at = |i: u32| self.learners.get(i as usize).map_or(0, |l| l.updated_at);
        let order = &self.learners_order;
        let mut start = since.map_or(0, |s| order.partition_point(|i| at(*i) < s));
        if let Some(a) = after {
            start = start.max(order.partition_point(|i| (at(*i), *i) <= a));
        }
        let mut keys: Vec<(i64, u32)> = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        // Generated learners that were never changed, then the changed and
        // created ones (all later: see `stamp`).
        for &i in order.get(start..).unwrap_or_default() {
            if changes.records.contains_key(&i) {
                continue;
            }
            if keys.len() == limit {
                more = true;
                break;
            }
            keys.push((at(i), i));
        }
        if !more {
            let since_bound = since.map(|s| (s, 0));
            let lower = match (since_bound, after) {
                (Some(s), Some(a)) if s > a => Bound::Included(s),
                (_, Some(a)) => Bound::Excluded(a),
                (Some(s), None) => Bound::Included(s),
                (None, None) => Bound::Unbounded,
            };
            for key in changes.tail.range((lower, Bound::Unbounded)) {
                if keys.len() == limit {
                    more = true;
                    break;
                }
                keys.push(*key);
            }
        }
        let data =
            keys.iter().filter_map(|(_, i)| self.learner_record_in(&changes, *i).map(|r| r.render(*i))).collect();
        let next = if more { keys.last().copied() } else { None };
        (data, next)
    }

    /// Creates a learner stamped `now_ms` (or later: see [`LearnerChanges`]).
    pub fn create_learner(&self, new: NewLearner, now_ms: i64) -> (u32, Learner) {
        let mut changes = self.changes_mut();
        let record = LearnerRecord {
            email: new.email,
            first_name: new.first_name,
            last_name: new.last_name,
            department_id: new.department_id,
            fields: new.fields,
            active: new.active,
            updated_at: self.stamp(&mut changes, now_ms),
        };
        let index = Self::next_index(&self.learners, &mut changes);
        let rendered = record.render(index);
        changes.put(index, record);
        (index, rendered)
    }

    /// The index of a new learner (they follow the generated ones).
    fn next_index(generated: &[LearnerRow], changes: &mut LearnerChanges) -> u32 {
        let base = u32::try_from(generated.len()).unwrap_or(u32::MAX);
        let index = base.saturating_add(changes.created);
        changes.created = changes.created.saturating_add(1);
        index
    }

    /// Stores a new learner (its index follows the others) stamped `now_ms`
    /// or later.
    fn insert_new(&self, changes: &mut LearnerChanges, mut record: LearnerRecord, now_ms: i64) -> u32 {
        let index = Self::next_index(&self.learners, changes);
        record.updated_at = self.stamp(changes, now_ms);
        changes.put(index, record);
        index
    }

    /// Applies `patch` to learner `i` and stamps it `now_ms` (or later); `None`
    /// when there is no such learner.
    pub fn update_learner(&self, i: u32, patch: LearnerPatch, now_ms: i64) -> Option<Learner> {
        let mut changes = self.changes_mut();
        let mut record = self.learner_record_in(&changes, i)?;
        patch.apply(&mut record);
        record.updated_at = self.stamp(&mut changes, now_ms);
        let rendered = record.render(i);
        changes.put(i, record);
        Some(rendered)
    }

    /// Applies a batch of upserts in order under one lock (an `Err` item is
    /// passed through untouched). Each is matched by `fields.external_id`,
    /// else by email (case-insensitive; among learners without an external
    /// id), else created with its external id stamped in `fields`.
    pub fn upsert_learners<E>(
        &self,
        items: impl IntoIterator<Item = Result<UpsertItem, E>>,
        options: UpsertOptions,
        now_ms: i64,
    ) -> (Vec<Result<Upserted, E>>, WriteCounts) {
        let mut changes = self.changes_mut();
        let mut counts = WriteCounts::default();
        let out = items
            .into_iter()
            .map(|item| item.map(|item| self.upsert_one(&mut changes, item, options, now_ms, &mut counts)))
            .collect();
        (out, counts)
    }

    fn upsert_one(
        &self,
        changes: &mut LearnerChanges,
        item: UpsertItem,
        options: UpsertOptions,
        now_ms: i64,
        counts: &mut WriteCounts,
    ) -> Upserted {
        let found = match changes.with_external_id(&item.external_id) {
            Some(i) => Some(i),
            None => {
                let candidates = self.with_email(changes, &item.email.to_lowercase());
                let free = candidates.iter().copied().find(|i| {
                    self.learner_record_in(changes, *i).is_some_and(|r| !r.fields.contains_key(EXTERNAL_ID_FIELD))
                });
                match (free, candidates.first()) {
                    (Some(i), _) => Some(i),
                    (None, Some(taken)) => {
                        return Upserted::Conflict(format!(
                            "email {:?} belongs to learner {} with another external_id",
                            item.email,
                            learner_id(*taken)
                        ));
                    }
                    (None, None) => None,
                }
            }
        };
        let current = found.and_then(|i| self.learner_record_in(changes, i).map(|r| (i, r)));
        let groups = item.groups.as_deref().map(|names| changes.groups.ensure(names, &mut counts.groups_created));
        let mut memberships = |changes: &mut LearnerChanges, i: u32| {
            let (added, removed) = groups
                .as_deref()
                .map_or((0, 0), |g| changes.groups.set_memberships(i, g, options.remove_missing_groups));
            counts.memberships_added += added;
            counts.memberships_removed += removed;
            added + removed > 0
        };
        match current {
            Some((i, current)) => {
                let mut next = current.clone();
                next.email = item.email;
                next.first_name = item.first_name;
                next.last_name = item.last_name;
                if let Some(d) = item.department_id {
                    next.department_id = Some(d);
                }
                next.fields.extend(item.fields);
                next.fields.insert(EXTERNAL_ID_FIELD.to_owned(), item.external_id);
                next.active = item.active;
                let record_changed = next != current;
                let memberships_changed = memberships(changes, i);
                if !record_changed && !memberships_changed {
                    counts.unchanged += 1;
                    return Upserted::Unchanged(i);
                }
                next.updated_at = self.stamp(changes, now_ms);
                changes.put(i, next);
                counts.updated += 1;
                Upserted::Updated(i)
            }
            None => {
                let mut fields = item.fields;
                fields.insert(EXTERNAL_ID_FIELD.to_owned(), item.external_id);
                let record = LearnerRecord {
                    email: item.email,
                    first_name: item.first_name,
                    last_name: item.last_name,
                    department_id: item.department_id,
                    fields,
                    active: item.active,
                    updated_at: 0,
                };
                let i = self.insert_new(changes, record, now_ms);
                memberships(changes, i);
                if options.send_welcome_email {
                    changes.welcome.push(i);
                    counts.welcome_emails += 1;
                }
                counts.created += 1;
                Upserted::Created(i)
            }
        }
    }

    /// Deactivates (keeping the learner and its records) the learner with
    /// each external id, in order.
    pub fn deactivate_by_external_ids(&self, external_ids: &[String], now_ms: i64) -> Vec<Deactivated> {
        let mut changes = self.changes_mut();
        external_ids
            .iter()
            .map(|x| {
                let found =
                    changes.with_external_id(x).and_then(|i| self.learner_record_in(&changes, i).map(|r| (i, r)));
                match found {
                    None => Deactivated::NotFound,
                    Some((i, r)) if !r.active => Deactivated::AlreadyInactive(i),
                    Some((i, mut r)) => {
                        r.active = false;
                        r.updated_at = self.stamp(&mut changes, now_ms);
                        changes.put(i, r);
                        Deactivated::Deactivated(i)
                    }
                }
            })
            .collect()
    }

    /// The learners with any of these external ids or emails
    /// (case-insensitive), each once: by external id in the order asked,
    /// then by email.
    pub fn find_learners(&self, external_ids: &[String], emails: &[String]) -> Vec<Learner> {
        let changes = self.changes();
        let mut seen = std::collections::HashSet::new();
        let mut found: Vec<u32> = Vec::new();
        for x in external_ids {
            let mut matches = changes.by_external_id.get(x).cloned().unwrap_or_default();
            matches.sort_unstable();
            found.extend(matches.into_iter().filter(|i| seen.insert(*i)));
        }
        for e in emails {
            let matches = self.with_email(&changes, &e.trim().to_lowercase());
            found.extend(matches.into_iter().filter(|i| seen.insert(*i)));
        }
        found.iter().filter_map(|i| self.learner_record_in(&changes, *i).map(|r| r.render(*i))).collect()
    }

    /// Records a welcome email sent to learner `i`.
    pub fn record_welcome(&self, i: u32) {
        self.changes_mut().welcome.push(i);
    }

    /// The learners sent a welcome email, in order.
    pub fn welcome_emails(&self) -> Vec<String> {
        self.changes().welcome.iter().map(|i| learner_id(*i)).collect()
    }

    /// The index of the group `id` names.
    pub fn group_index(&self, id: &str) -> Option<u32> {
        let i = parse_id(id, 'G').filter(|i| group_id(*i) == id)?;
        ((i as usize) < self.changes().groups.names.len()).then_some(i)
    }

    pub fn group(&self, i: u32) -> Option<Group> {
        self.changes().groups.render(i)
    }

    pub fn group_count(&self) -> usize {
        self.changes().groups.names.len()
    }

    /// Up to `limit` groups from index `start` on.
    pub fn groups_from(&self, start: u32, limit: usize) -> Vec<Group> {
        let changes = self.changes();
        (start..).take(limit).map_while(|i| changes.groups.render(i)).collect()
    }

    /// Creates a group; `Err` with the group already holding this name
    /// (case-insensitively).
    pub fn create_group(&self, name: &str) -> Result<Group, Group> {
        let mut changes = self.changes_mut();
        if let Some(g) = changes.groups.find(name).and_then(|g| changes.groups.render(g)) {
            return Err(g);
        }
        let g = changes.groups.create(name);
        changes.groups.render(g).ok_or_else(|| Group { id: group_id(g), name: name.to_owned(), member_count: 0 })
    }

    /// The ids of group `g`'s learners (`None`: no such group).
    pub fn group_members(&self, g: u32) -> Option<Vec<String>> {
        self.changes().groups.members.get(g as usize).map(|m| m.iter().map(|i| learner_id(*i)).collect())
    }

    /// Adds learner `l` to group `g`: whether it was new (`None`: no such group).
    pub fn add_member(&self, g: u32, l: u32) -> Option<bool> {
        let mut changes = self.changes_mut();
        ((g as usize) < changes.groups.names.len()).then(|| changes.groups.add(g, l))
    }

    /// Removes learner `l` from group `g`: whether it was a member (`None`:
    /// no such group).
    pub fn remove_member(&self, g: u32, l: u32) -> Option<bool> {
        let mut changes = self.changes_mut();
        ((g as usize) < changes.groups.names.len()).then(|| changes.groups.remove(g, l))
    }

    /// The names of learner `l`'s groups, sorted.
    pub fn group_names_of(&self, l: u32) -> Vec<String> {
        let changes = self.changes();
        let mut names: Vec<String> = changes
            .groups
            .of_learner
            .get(&l)
            .map(|set| set.iter().filter_map(|g| changes.groups.names.get(*g as usize).cloned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The time of a change: `now_ms`, but strictly after every generated
    /// learner and every earlier change, so changed learners move to the end
    /// of the `(updated_at, id)` order and a cursor never skips one.
    fn stamp(&self, changes: &mut LearnerChanges, now_ms: i64) -> i64 {
        let generated_max =
            self.learners_order.last().and_then(|i| self.learners.get(*i as usize)).map_or(i64::MIN, |l| l.updated_at);
        let t = now_ms.max(generated_max.saturating_add(1)).max(changes.last_stamp.saturating_add(1));
        changes.last_stamp = t;
        t
    }

    pub fn department(&self, i: u32) -> Option<Department> {
        let d = self.departments.get(i as usize)?;
        Some(Department { id: department_id(i), name: d.name.clone(), parent_id: d.parent.map(department_id) })
    }

    pub fn course(&self, i: u32) -> Option<Course> {
        let c = self.courses.get(i as usize)?;
        Some(Course { id: course_id(i), title: c.title.clone() })
    }

    /// Enrollment `i`'s current version (see [`crate::enrollments`]).
    pub fn enrollment(&self, i: u32) -> Option<Enrollment> {
        let row = self.current_enrollment(i)?;
        Some(self.render_enrollment(i, &row))
    }

    /// One version of enrollment `i` as the API renders it.
    pub fn render_enrollment(&self, i: u32, e: &EnrollmentRow) -> Enrollment {
        Enrollment {
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
        }
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

    fn depth(d: &Dataset, mut i: u32) -> usize {
        let mut depth = 1;
        while let Some(p) = d.departments[i as usize].parent {
            assert!(p < i, "parents come first, so there is no cycle");
            i = p;
            depth += 1;
        }
        depth
    }

    #[test]
    fn departments_form_a_forest_deeper_than_two_levels() {
        for n in [3, 4, 5, 8, 14, 50, 400] {
            let d = generate(DatasetParams {
                seed: 5,
                learners: 10,
                departments: n,
                courses: 1,
                enrollments_per_learner: 0,
            });
            let max = (0..n).map(|i| depth(&d, i)).max().unwrap();
            assert!(max >= 3, "{n} departments: depth {max}");
            assert!(d.departments.iter().any(|x| x.parent.is_none()));
        }
        let d = generate(DatasetParams::default());
        assert_eq!(d.department(2).unwrap().parent_id.as_deref(), Some("D01"));
        assert_eq!(d.department(1).unwrap().parent_id.as_deref(), Some("D00"));
    }

    fn small() -> Dataset {
        generate(DatasetParams { seed: 9, learners: 30, departments: 4, courses: 3, enrollments_per_learner: 1 })
    }

    fn all_pages(d: &Dataset, since: Option<i64>, limit: usize) -> Vec<Learner> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = d.learners_page(since, after, limit);
            assert!(page.len() <= limit);
            out.extend(page);
            match next {
                Some(k) => after = Some(k),
                None => return out,
            }
        }
    }

    fn keys(ls: &[Learner]) -> Vec<(String, String)> {
        ls.iter().map(|l| (l.updated_at.clone(), l.id.clone())).collect()
    }

    #[test]
    fn changed_and_created_learners_move_to_the_end_of_the_order() {
        let d = small();
        let before = all_pages(&d, None, 7);
        assert_eq!(before.len(), 30);
        let now = EPOCH_MS; // earlier than generated data: stamps still come after it
        let patch = LearnerPatch { first_name: Some("Changed".into()), ..LearnerPatch::default() };
        let changed = d.update_learner(3, patch.clone(), now).unwrap();
        assert!(changed.updated_at > before.last().unwrap().updated_at);
        let (idx, created) = d.create_learner(
            NewLearner {
                email: "new@example.com".into(),
                first_name: "New".into(),
                last_name: "Learner".into(),
                department_id: None,
                fields: BTreeMap::new(),
                active: true,
            },
            now,
        );
        assert_eq!((idx, created.id.as_str()), (30, "L000030"));
        assert!(created.updated_at > changed.updated_at, "stamps strictly increase");
        // Changed again: moves behind the created one.
        let again = d.update_learner(3, patch, now).unwrap();
        assert!(again.updated_at > created.updated_at);

        for limit in [1, 4, 7, 31, 1000] {
            let after = all_pages(&d, None, limit);
            let ids: Vec<&str> = after.iter().map(|l| l.id.as_str()).collect();
            assert_eq!(after.len(), 31, "limit {limit}: every learner once");
            assert_eq!(&ids[29..], ["L000030", "L000003"], "limit {limit}");
            let mut sorted = keys(&after);
            sorted.sort();
            assert_eq!(keys(&after), sorted, "limit {limit}: (updated_at, id) order");
        }
        let since = parse_rfc3339(&created.updated_at).unwrap();
        let recent = all_pages(&d, Some(since), 1);
        assert_eq!(recent.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["L000030", "L000003"]);
        assert_eq!(d.learner(3).unwrap().first_name, "Changed");
        assert_eq!(d.learner_count(), 31);
        assert_eq!(d.learner_index("L000030"), Some(30));
        assert_eq!(d.learner_index("L30"), None, "ids are canonical");
        assert_eq!(d.learner_index("L000031"), None);
        assert_eq!(d.learners_by_index(&[30, 99, 0]).len(), 2);
    }

    #[test]
    fn a_patch_merges_fields_and_clears_the_department() {
        let d = small();
        let mut fields = BTreeMap::new();
        fields.insert("title".to_owned(), None);
        fields.insert("team".to_owned(), Some("Blue".to_owned()));
        let patch = LearnerPatch { department_id: Some(None), fields, active: Some(false), ..LearnerPatch::default() };
        let before = d.learner(0).unwrap();
        let after = d.update_learner(0, patch, EPOCH_MS).unwrap();
        assert_eq!(after.department_id, None);
        assert!(!after.active);
        assert_eq!(after.fields.get("team").map(String::as_str), Some("Blue"));
        assert!(!after.fields.contains_key("title"));
        assert_eq!(after.fields.get("location"), before.fields.get("location"));
        assert_eq!((after.email, after.first_name), (before.email, before.first_name));
        assert!(d.update_learner(99, LearnerPatch::default(), EPOCH_MS).is_none());
        assert!(d.has_department("D03") && !d.has_department("D3") && !d.has_department("D04"));
    }
}
