//! Replays `tests/golden/schedules.json`, produced by Prefect 3.9.1 itself
//! (`tests/golden/gen_schedules.py`): for every case our validated schedule
//! serializes as Prefect's `model_dump(mode="json")` and `get_dates` returns
//! exactly Prefect's dates.

use chrono::{DateTime, Utc};
use prefect_domain::schedule::Schedule;
use serde_json::Value;

const GOLDEN: &str = include_str!("../golden/schedules.json");

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn occurrences_match_prefect() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases {
        let input = &case["input"];
        let schedule: Schedule = serde_json::from_value(input.clone()).unwrap_or_else(|e| panic!("{input}: {e}"));
        let schedule = schedule.validated().unwrap_or_else(|e| panic!("{input}: {e}"));
        let dumped = serde_json::to_value(&schedule).unwrap();
        if dumped != case["dump"] {
            failures.push(format!("{input}\n  dump: ours {dumped}\n        prefect {}", case["dump"]));
        }
        for query in case["queries"].as_array().unwrap() {
            let n = query["n"].as_u64().map(|n| n as usize);
            let start = utc(query["start"].as_str().unwrap());
            let end = query["end"].as_str().map(utc);
            let ours = schedule.get_dates(n, start, end);
            checked += 1;
            let expected: Vec<DateTime<Utc>> = match query.get("dates") {
                Some(dates) => dates.as_array().unwrap().iter().map(|d| utc(d.as_str().unwrap())).collect(),
                // Prefect raised; we return no dates.
                None => Vec::new(),
            };
            if ours != expected {
                let show = |v: &[DateTime<Utc>]| v.iter().take(12).map(|d| d.format("%m-%dT%H:%M:%S%.f").to_string()).collect::<Vec<_>>().join(" ");
                failures.push(format!(
                    "{input} n={n:?} start={start} end={end:?}\n  ours    ({}) {}\n  prefect ({}) {}",
                    ours.len(),
                    show(&ours),
                    expected.len(),
                    show(&expected)
                ));
            }
        }
    }
    assert!(checked > 2000, "golden file looks truncated: {checked} queries");
    assert!(failures.is_empty(), "{} of {checked} mismatches:\n{}", failures.len(), failures.join("\n"));
}
