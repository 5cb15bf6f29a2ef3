//! The load generator itself must not rot: a small run against a real server delivers every pair
//! once, reports the server's memory, and survives a small reconnect storm. No timing is asserted
//! here; figures belong in docs/benchmarks.md.

use crate::support::serve;
use serde_json::Value;
use std::process::Command;

#[test]
fn a_small_bench_run_delivers_every_pair_once_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("h.db").display());
    let server = serve(
        &db,
        &["--connects-per-ip-per-minute", "100000", "--broadcasts-per-admin-per-minute", "100000"],
    );
    let pid = server.child.id().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["bench", "--url", &server.base, "--streams", "30", "--broadcasts", "4", "--rate", "20"])
        .args([
            "--target",
            "role",
            "--source-ips",
            "3",
            "--storm",
            "2",
            "--wait",
            "20s",
            "--quiet",
            "--pid",
            &pid,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().last().expect("a JSON line");
    let report: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(report["streams_held"], 30);
    assert_eq!(report["expected_pairs"], 120);
    assert_eq!(report["delivered_pairs"], 120, "{stdout}");
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["latency_ms"]["count"], 120);
    let (first, last) = (&report["first_receipt_ms"], &report["last_receipt_ms"]);
    assert_eq!((first["count"].as_u64(), last["count"].as_u64()), (Some(4), Some(4)), "one per broadcast");
    assert!(first["max"].as_f64().unwrap() <= last["max"].as_f64().unwrap(), "{stdout}");
    let each = report["broadcasts"].as_array().expect("each broadcast's times");
    assert_eq!(each.len(), 4, "{stdout}");
    for b in each {
        let (first, last) = (b["first_ms"].as_f64().unwrap(), b["last_ms"].as_f64().unwrap());
        assert!(b["create_ms"].as_f64().unwrap() > 0.0 && first <= last, "{b}");
    }
    assert!(report["records_committed_ms"].is_number(), "{stdout}");
    assert!(report["server"]["holding"]["rss_kib"].as_u64().unwrap() > 0);
    assert_eq!(report["storm"]["caught_up"], 30, "{stdout}");
    assert!(stdout.contains("deliveries           120 of 120 pairs"), "{stdout}");
}
