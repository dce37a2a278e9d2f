//! Deterministic data sets: a pure function of [`DatasetParams`].

use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::prng::SplitMix64;
use crate::store::{Employee, EmploymentStatus, Group, Store, rfc3339_ms, uuid_bytes, uuid_like};

/// Parameters of a data set (`POST /__emulator/dataset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetParams {
    pub seed: u64,
    pub employees: u32,
    pub groups: u32,
}

impl Default for DatasetParams {
    fn default() -> Self {
        DatasetParams { seed: 1, employees: 100, groups: 6 }
    }
}

/// Upper bounds accepted by the generator.
pub const MAX_EMPLOYEES: u32 = 2_000_000;
pub const MAX_GROUPS: u32 = 10_000;

/// 2026-01-01T00:00:00Z in Unix milliseconds: the start of generated history
/// (`modified_at` falls in the 90 days after it, on whole minutes, so many
/// employees share one and the id breaks the tie).
pub const EPOCH_MS: i64 = 1_767_225_600_000;
const HISTORY_MINUTES: u64 = 90 * 24 * 60;
/// 2015-01-01T00:00:00Z in Unix seconds: the earliest generated start date.
const START_DATES_FROM: i64 = 1_420_070_400;

const KIND_EMPLOYEE: u64 = 1;
const KIND_GROUP: u64 = 2;
const KIND_COMPANY: u64 = 3;

/// Invalid parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub String);

impl DatasetParams {
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.employees > MAX_EMPLOYEES {
            return Err(ParamError(format!("employees must be at most {MAX_EMPLOYEES}")));
        }
        if self.groups > MAX_GROUPS {
            return Err(ParamError(format!("groups must be at most {MAX_GROUPS}")));
        }
        Ok(())
    }
}

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
];
const DEPARTMENTS: &[&str] =
    &["Engineering", "Sales", "Marketing", "Finance", "People", "Support", "Legal", "Operations", "Product", "Design"];
const TEAMS: &[&str] = &["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta", "Eta", "Theta", "Iota", "Kappa"];
const TITLES: &[&str] = &[
    "Engineer",
    "Senior Engineer",
    "Account Executive",
    "Analyst",
    "Manager",
    "Director",
    "Specialist",
    "Coordinator",
    "Designer",
    "Consultant",
];

fn pick(g: &mut SplitMix64, n: usize) -> u8 {
    u8::try_from(g.below(n as u64)).unwrap_or(0)
}

fn name(list: &[&'static str], i: u8) -> &'static str {
    list.get(usize::from(i)).copied().unwrap_or_default()
}

/// Group `j`: even ones are departments, odd ones teams.
fn group(seed: u64, j: u32) -> Group {
    let mut g = SplitMix64::for_entity(seed, KIND_GROUP, u64::from(j));
    let (list, kind) = if j % 2 == 0 { (DEPARTMENTS, "DEPARTMENT") } else { (TEAMS, "TEAM") };
    let n = (j / 2) as usize;
    let base = list.get(n % list.len()).copied().unwrap_or_default();
    let round = n / list.len();
    let name = match (kind, round) {
        ("TEAM", 0) => format!("Team {base}"),
        ("TEAM", r) => format!("Team {base} {}", r + 1),
        (_, 0) => base.to_owned(),
        (_, r) => format!("{base} {}", r + 1),
    };
    Group { id: uuid_like(&mut g), remote_id: Some(format!("G{j:05}")), name: Some(name), kind: Some(kind.to_owned()) }
}

/// The date (midnight UTC) `days` after 2015-01-01, RFC 3339.
fn date(days: u32) -> String {
    let secs = START_DATES_FROM + i64::from(days) * 86_400;
    let s = rfc3339_ms(secs * 1000);
    // `…T00:00:00.000Z` → `…T00:00:00Z`.
    s.replacen(".000Z", "Z", 1)
}

const NONE: u32 = u32::MAX;

/// One generated employee, compact: rendered on demand.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub id: [u8; 36],
    /// Unix milliseconds.
    pub modified_at: i64,
    first: u8,
    last: u8,
    title: u8,
    status: EmploymentStatus,
    personal_email: bool,
    deleted: bool,
    /// Index into the departments ([`NONE`]: none).
    department: u32,
    /// Index into the teams ([`NONE`]: none).
    team: u32,
    /// Days after 2015-01-01.
    start: u32,
    /// Days after 2015-01-01 ([`NONE`]: none).
    termination: u32,
}

impl Row {
    pub fn id_str(&self) -> &str {
        std::str::from_utf8(&self.id).unwrap_or_default()
    }
}

/// A generated data set's employees: compact rows, their `(modified_at, id)`
/// order and their id order.
#[derive(Debug, Default)]
pub struct Base {
    rows: Vec<Row>,
    /// Row indexes by `(modified_at, id)`.
    pub(crate) order: Vec<u32>,
    /// Row indexes by id.
    by_id: Vec<u32>,
    company: String,
    /// (id, name) of the DEPARTMENT groups.
    departments: Vec<(String, String)>,
    /// Ids of the TEAM groups.
    teams: Vec<String>,
}

impl Base {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn row(&self, i: u32) -> Option<&Row> {
        self.rows.get(i as usize)
    }

    /// The order key of row `i`.
    pub fn key(&self, i: u32) -> (i64, &[u8]) {
        self.row(i).map_or((i64::MIN, &[][..]), |r| (r.modified_at, &r.id[..]))
    }

    /// The row with this id.
    pub fn find(&self, id: &str) -> Option<u32> {
        if id.len() != 36 {
            return None;
        }
        let at = self.by_id.partition_point(|i| self.key(*i).1 < id.as_bytes());
        self.by_id.get(at).copied().filter(|i| self.key(*i).1 == id.as_bytes())
    }

    pub fn max_modified_at(&self) -> Option<i64> {
        self.order.last().and_then(|i| self.row(*i)).map(|r| r.modified_at)
    }

    /// Row `i` as the API renders it.
    pub fn employee(&self, i: u32) -> Option<Employee> {
        let r = self.row(i)?;
        let (first, last) = (name(FIRST_NAMES, r.first), name(LAST_NAMES, r.last));
        let department = self.departments.get(r.department as usize);
        let mut groups: Vec<String> = department.map(|d| d.0.clone()).into_iter().collect();
        groups.extend(self.teams.get(r.team as usize).cloned());
        Some(Employee {
            id: r.id_str().to_owned(),
            remote_id: Some(format!("{}", 100_000 + u64::from(i))),
            employee_number: Some(format!("EMP{:06}", u64::from(i) + 1)),
            company: Some(self.company.clone()),
            first_name: Some(first.to_owned()),
            last_name: Some(last.to_owned()),
            display_full_name: Some(format!("{first} {last}")),
            groups,
            work_email: Some(format!("{}.{}{i}@acme.example", first.to_ascii_lowercase(), last.to_ascii_lowercase())),
            personal_email: r.personal_email.then(|| format!("{}{i}@mail.example", first.to_ascii_lowercase())),
            department: department.map(|d| d.1.clone()),
            job_title: Some(name(TITLES, r.title).to_owned()),
            employment_status: Some(r.status),
            start_date: Some(date(r.start)),
            termination_date: (r.termination != NONE).then(|| date(r.termination)),
            remote_was_deleted: r.deleted,
            modified_at: r.modified_at,
            extra: Map::new(),
        })
    }
}

/// Employee `i` of the data set.
fn row(seed: u64, i: u32, departments: usize, teams: usize) -> Row {
    let mut g = SplitMix64::for_entity(seed, KIND_EMPLOYEE, u64::from(i));
    let id = uuid_bytes(&mut g);
    let first = pick(&mut g, FIRST_NAMES.len());
    let last = pick(&mut g, LAST_NAMES.len());
    let department = if departments > 0 { g.below(departments as u64) as u32 } else { NONE };
    let team = if teams > 0 && g.chance(60) { g.below(teams as u64) as u32 } else { NONE };
    let status = match g.below(100) {
        0..85 => EmploymentStatus::Active,
        85..90 => EmploymentStatus::Pending,
        _ => EmploymentStatus::Inactive,
    };
    let start = g.below(11 * 365) as u32;
    let termination = if status == EmploymentStatus::Inactive { start + 30 + g.below(365) as u32 } else { NONE };
    let personal_email = g.chance(80);
    let modified_at = EPOCH_MS + g.below(HISTORY_MINUTES) as i64 * 60_000;
    let title = pick(&mut g, TITLES.len());
    let deleted = g.chance(1);
    Row { id, modified_at, first, last, title, status, personal_email, deleted, department, team, start, termination }
}

/// The data set of `p` (assumed valid).
pub fn generate(p: DatasetParams) -> Store {
    let groups: Vec<Group> = (0..p.groups).map(|j| group(p.seed, j)).collect();
    let mut departments = Vec::new();
    let mut teams = Vec::new();
    for g in &groups {
        if g.kind.as_deref() == Some("DEPARTMENT") {
            departments.push((g.id.clone(), g.name.clone().unwrap_or_default()));
        } else {
            teams.push(g.id.clone());
        }
    }
    let rows: Vec<Row> = (0..p.employees).map(|i| row(p.seed, i, departments.len(), teams.len())).collect();
    let mut order: Vec<u32> = (0..p.employees).collect();
    order.sort_unstable_by_key(|i| rows.get(*i as usize).map(|r| (r.modified_at, r.id)));
    let mut by_id: Vec<u32> = (0..p.employees).collect();
    by_id.sort_unstable_by_key(|i| rows.get(*i as usize).map(|r| r.id));
    let company = uuid_like(&mut SplitMix64::for_entity(p.seed, KIND_COMPANY, 0));
    Store::new(Base { rows, order, by_id, company, departments, teams }, groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_a_pure_function() {
        let p = DatasetParams { seed: 42, employees: 500, groups: 7 };
        let (a, b) = (generate(p), generate(p));
        let (pa, _) = a.employees_page(None, None, 500);
        let (pb, _) = b.employees_page(None, None, 500);
        assert_eq!(pa, pb);
        assert_eq!(a.group_count(), 7);
        let c = generate(DatasetParams { seed: 43, ..p });
        let (pc, _) = c.employees_page(None, None, 500);
        assert_ne!(pa, pc);
        let e = &pa[0];
        assert_eq!(e.id.len(), 36);
        assert!(e.modified_at >= EPOCH_MS);
        assert!(e.start_date.as_deref().is_some_and(|d| d.ends_with("T00:00:00Z")), "{:?}", e.start_date);
        assert!(e.validate().is_ok());
    }

    #[test]
    fn generated_and_changed_employees_page_as_one_order() {
        use crate::store::{Cursor, rfc3339_ms};
        let mut s = generate(DatasetParams { seed: 3, employees: 300, groups: 4 });
        let all = s.employees_page(None, None, 300).0;
        // Ids are found; changes land at the end or, with an explicit time, anywhere.
        for e in &all {
            assert_eq!(s.employee(&e.id).as_ref(), Some(e));
        }
        let mid = all[150].modified_at;
        let mut patch = serde_json::Map::new();
        patch.insert("modified_at".into(), serde_json::json!(rfc3339_ms(mid)));
        s.patch_employee(&all[10].id, &patch, 0).unwrap();
        s.patch_employee(&all[200].id, &serde_json::Map::new(), 0).unwrap();
        s.delete_employee(&all[0].id, 0).unwrap();
        let mut created = all[5].clone();
        created.id = s.mint_id();
        s.put_employee(created, false, 0);
        assert_eq!(s.employee_count(), 301);
        let mut expected: Vec<(i64, String)> =
            all.iter().map(|e| (s.employee(&e.id).unwrap().modified_at, e.id.clone())).collect();
        expected.push((s.max_modified_at().unwrap(), String::new()));
        expected.sort();
        // Forward in pages of 7, then back through `previous`.
        let mut got = Vec::new();
        let mut cursor: Option<Cursor> = None;
        let mut last_previous = None;
        loop {
            let (items, keys) = s.employees_page(None, cursor.as_ref(), 7);
            got.extend(items.iter().map(|e| (e.modified_at, e.id.clone())));
            last_previous = keys.previous.or(last_previous);
            match keys.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(got.len(), 301);
        assert_eq!(got.iter().map(|k| k.0).collect::<Vec<_>>(), expected.iter().map(|k| k.0).collect::<Vec<_>>());
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted);
        let mut back = Vec::new();
        let mut prev = last_previous;
        while let Some(p) = prev {
            let (items, keys) = s.employees_page(None, Some(&p), 7);
            back.splice(0..0, items.iter().map(|e| (e.modified_at, e.id.clone())));
            prev = keys.previous;
        }
        assert_eq!(back, got[..back.len()]);
        assert!(back.len() >= 294);
    }
}
