//! `#[hypertrace::main]` end to end: every way out of `main` (return, `Err`, panic) flushes the
//! spans still queued; an invalid config exits with status 78 and one clear line; the startup span
//! switch works. The binary re-runs itself as a child per scenario (`EXIT_PATHS_MODE`).

use std::process::Command;

#[hypertrace::main]
async fn main() -> Result<(), String> {
    let mode = std::env::var("EXIT_PATHS_MODE").unwrap_or_default();
    if mode.is_empty() {
        drive();
        return Ok(());
    }
    tracing::info_span!("work", mode = mode.as_str()).in_scope(|| tracing::info!("working"));
    match mode.as_str() {
        "err" => Err("failed on purpose".into()),
        "panic" => panic!("panicked on purpose"),
        _ => Ok(()),
    }
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(mode: &str, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("EXIT_PATHS_MODE", mode)
        .env("HT_REPORTING_TRACE_REPORTER_TYPE", "LOGGING")
        // Only the exit flush can deliver within the run: the scheduled export is a minute away.
        .env("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "60000")
        .env_remove("HT_CONFIG_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn spans(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

fn drive() {
    let mut passed = 0;
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: &dyn Fn() -> String| {
        if ok {
            passed += 1;
            println!("test {name} ... ok");
        } else {
            failed += 1;
            println!("test {name} ... FAILED\n{}", detail());
        }
    };

    for (mode, code) in [("ok", 0), ("err", 1), ("panic", 101)] {
        let o = run(mode, &[]);
        let s = spans(&o.stdout);
        let work = s.iter().find(|s| s["name"] == "work");
        let ok = o.code == Some(code)
            && work.is_some_and(|w| {
                w["attributes"]["mode"] == mode
                    && w["events"][0]["name"] == "working"
                    && w["resource"]["service.name"] == "hypertrace"
            });
        check(
            &format!("exit_path_{mode}_flushes_the_queued_span"),
            ok,
            &|| {
                format!(
                    "code {:?}\nstdout {}\nstderr {}",
                    o.code, o.stdout, o.stderr
                )
            },
        );
    }

    let o = run("ok", &[("HT_ENABLED", "nope")]);
    let line = o
        .stderr
        .lines()
        .find(|l| l.contains("HT_ENABLED"))
        .unwrap_or("");
    check(
        "invalid_env_value_exits_78_naming_variable_value_and_expectation",
        o.code == Some(78)
            && line.contains("\"nope\"")
            && line.contains("true or false")
            && spans(&o.stdout).is_empty(),
        &|| format!("code {:?} stderr {}", o.code, o.stderr),
    );

    let o = run("ok", &[("HT_CONFIG_FILE", "/nonexistent/agent.yaml")]);
    check(
        "unreadable_named_config_file_exits_78",
        o.code == Some(78) && o.stderr.contains("/nonexistent/agent.yaml"),
        &|| format!("code {:?} stderr {}", o.code, o.stderr),
    );

    let o = run("ok", &[("HT_REPORTING_TRACE_REPORTER_TYPE", "KAFKA")]);
    check(
        "unknown_reporter_type_exits_78_listing_accepted_names",
        o.code == Some(78) && o.stderr.contains("KAFKA") && o.stderr.contains("OTLP_HTTP"),
        &|| format!("code {:?} stderr {}", o.code, o.stderr),
    );

    let o = run(
        "ok",
        &[
            ("HT_TELEMETRY_STARTUP_SPAN_ENABLED", "true"),
            ("HT_SERVICE_NAME", "svc-from-env"),
        ],
    );
    let s = spans(&o.stdout);
    check(
        "startup_span_and_service_name_from_env",
        s.iter().any(|s| s["name"] == "hypertrace.agent.startup")
            && s.iter()
                .all(|s| s["resource"]["service.name"] == "svc-from-env"),
        &|| o.stdout.clone(),
    );
    let o = run("ok", &[]);
    check(
        "no_startup_span_by_default",
        !spans(&o.stdout)
            .iter()
            .any(|s| s["name"] == "hypertrace.agent.startup"),
        &|| o.stdout.clone(),
    );

    let o = run("ok", &[("HT_ENABLED", "false")]);
    check(
        "disabled_exports_nothing",
        o.code == Some(0) && spans(&o.stdout).is_empty(),
        &|| o.stdout.clone(),
    );

    let o = run("ok", &[("HT_UNKNOWN_SETTING", "1")]);
    check(
        "unknown_ht_variable_is_a_warning",
        o.code == Some(0) && o.stderr.contains("HT_UNKNOWN_SETTING"),
        &|| o.stderr.clone(),
    );

    println!("\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out", if failed == 0 { "ok" } else { "FAILED" });
    if failed > 0 {
        std::process::exit(1);
    }
}
