//! `#[hypertrace::main]` end to end: every way out of `main` (return, `Err`, panic) flushes the
//! spans still queued; an invalid config exits with status 78 and one clear line; the startup span
//! switch works; an app stopped by SIGINT/SIGTERM loses no finished span and dies of the signal as it
//! would without the agent, while an app's own graceful shutdown is never cut short. The binary
//! re-runs itself as a child per scenario (`EXIT_PATHS_MODE`); each scenario's program is a
//! `#[hypertrace::main]` of its own, below.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn main() -> Result<(), String> {
    match std::env::var("EXIT_PATHS_MODE")
        .unwrap_or_default()
        .as_str()
    {
        "" => {
            drive();
            Ok(())
        }
        "serve" => {
            unhandled::main();
            Ok(())
        }
        "serve_watcher_off" => {
            watcher_off::main();
            Ok(())
        }
        "graceful" => {
            graceful::main();
            Ok(())
        }
        "own_signal" => {
            own_signal::main();
            Ok(())
        }
        _ => plain::main(),
    }
}

/// Returns, returns `Err` or panics, per the mode.
mod plain {
    #[hypertrace::main]
    pub async fn main() -> Result<(), String> {
        let mode = std::env::var("EXIT_PATHS_MODE").unwrap_or_default();
        tracing::info_span!("work", mode = mode.as_str()).in_scope(|| tracing::info!("working"));
        match mode.as_str() {
            "err" => Err("failed on purpose".into()),
            "panic" => panic!("panicked on purpose"),
            _ => Ok(()),
        }
    }
}

/// The server of the signal scenarios: `/hello` answers at once, `/slow` after a second.
mod app {
    use axum::routing::get;
    use axum::Router;

    #[hypertrace::handler]
    async fn hello() -> &'static str {
        "hello"
    }

    #[hypertrace::handler]
    async fn slow() -> &'static str {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        "slow done"
    }

    pub async fn listen() -> (tokio::net::TcpListener, Router) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        eprintln!("listening on {}", listener.local_addr().unwrap().port());
        let app = Router::new()
            .route("/hello", get(hello))
            .route("/slow", get(slow));
        (listener, app)
    }

    /// Graceful shutdown through the agent's `shutdown_signal()`, out of `main`'s sight: only the
    /// run-time count tells the signal watcher that the app handles the signals.
    pub async fn serve_gracefully() {
        let (listener, app) = listen().await;
        axum::serve(listener, app)
            .with_graceful_shutdown(hypertrace::shutdown_signal())
            .await
            .unwrap();
    }
}

/// Most apps: no graceful shutdown, so SIGINT/SIGTERM stop them with the default action.
mod unhandled {
    #[hypertrace::main]
    pub async fn main() {
        let (listener, app) = super::app::listen().await;
        axum::serve(listener, app).await.unwrap();
    }
}

/// The same app with the watcher turned off: what happens without it (the control).
mod watcher_off {
    #[hypertrace::main(signal_watcher = false)]
    pub async fn main() {
        let (listener, app) = super::app::listen().await;
        axum::serve(listener, app).await.unwrap();
    }
}

/// Graceful shutdown on `hypertrace::shutdown_signal()`.
mod graceful {
    #[hypertrace::main]
    pub async fn main() {
        super::app::serve_gracefully().await;
        eprintln!("shut down gracefully");
    }
}

/// The app's own `tokio::signal` handling, written in `main`: the macro leaves it the signals.
mod own_signal {
    #[hypertrace::main]
    pub async fn main() {
        let (listener, app) = super::app::listen().await;
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                tokio::signal::ctrl_c().await.ok();
            })
            .await
            .unwrap();
        eprintln!("shut down gracefully");
    }
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn child(mode: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("EXIT_PATHS_MODE", mode)
        .env("HT_REPORTING_TRACE_REPORTER_TYPE", "LOGGING")
        // Only the exit flush can deliver within the run: the scheduled export is a minute away.
        .env("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "60000")
        .env_remove("HT_CONFIG_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(mode: &str, env: &[(&str, &str)]) -> Outcome {
    let out = child(mode, env).output().unwrap();
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
        o.code == Some(0)
            && s.iter().any(|s| s["name"] == "hypertrace.agent.startup")
            && s.iter()
                .all(|s| s["resource"]["service.name"] == "svc-from-env"),
        &|| o.stdout.clone(),
    );
    let o = run("ok", &[]);
    let s = spans(&o.stdout);
    check(
        "no_startup_span_by_default",
        // The positive control: the same run exported its `work` span, so the reporter worked and
        // its output was read; only the startup span is absent.
        o.code == Some(0)
            && s.iter().any(|s| s["name"] == "work")
            && !s.iter().any(|s| s["name"] == "hypertrace.agent.startup"),
        &|| format!("code {:?}\nstdout {}", o.code, o.stdout),
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

    signal_scenarios(&mut check);

    println!("\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out", if failed == 0 { "ok" } else { "FAILED" });
    if failed > 0 {
        std::process::exit(1);
    }
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// A scenario's server, run as a child: its port, and its output once it has ended.
struct Server {
    child: std::process::Child,
    port: u16,
    stderr: std::thread::JoinHandle<String>,
}

fn start_server(mode: &str) -> Server {
    let mut child = child(mode, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let port = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("{mode}: the server ended before listening: {seen}");
        }
        seen.push_str(&line);
        if let Some(port) = line.trim().strip_prefix("listening on ") {
            break port.parse().unwrap();
        }
    };
    let stderr = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        seen + &rest
    });
    Server {
        child,
        port,
        stderr,
    }
}

/// One HTTP/1.1 GET on its own connection: the status line and the body.
fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn send_signal(pid: u32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Waits for the server to end (at most 15 s, then it is killed): its status, stdout and stderr.
fn finish(mut server: Server) -> (ExitStatus, String, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = server.child.kill();
            break server.child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    server
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    (status, stdout, server.stderr.join().unwrap())
}

fn has_span(stdout: &str, name: &str) -> bool {
    spans(stdout).iter().any(|s| s["name"] == name)
}

fn signal_scenarios(check: &mut dyn FnMut(&str, bool, &dyn Fn() -> String)) {
    // No graceful shutdown: stopped 100 ms after a request, the app dies of the signal (as it would
    // without the agent) and the request's span, finished and queued, is exported first.
    for (signal, name) in [(SIGINT, "sigint"), (SIGTERM, "sigterm")] {
        let server = start_server("serve");
        let response = get(server.port, "/hello");
        std::thread::sleep(Duration::from_millis(100));
        send_signal(server.child.id(), signal);
        let (status, stdout, stderr) = finish(server);
        check(
            &format!("{name}_100ms_after_a_request_exports_its_span_and_dies_of_the_signal"),
            response.starts_with("HTTP/1.1 200")
                && response.ends_with("hello")
                && status.signal() == Some(signal)
                && has_span(&stdout, "GET /hello"),
            &|| {
                format!(
                    "response {response:?}\nstatus {status:?}\nstdout {stdout}\nstderr {stderr}"
                )
            },
        );
    }

    // The control: without the watcher the same app dies of the signal with its span still queued.
    let server = start_server("serve_watcher_off");
    let response = get(server.port, "/hello");
    std::thread::sleep(Duration::from_millis(100));
    send_signal(server.child.id(), SIGINT);
    let (status, stdout, stderr) = finish(server);
    check(
        "without_the_watcher_the_span_is_lost_and_the_signal_kills",
        response.starts_with("HTTP/1.1 200")
            && status.signal() == Some(SIGINT)
            && !has_span(&stdout, "GET /hello"),
        &|| format!("status {status:?}\nstdout {stdout}\nstderr {stderr}"),
    );

    // An app's own graceful shutdown is never cut short: the request in flight when the signal
    // arrives is answered, the app returns from `main` (status 0), and the span is exported.
    for (mode, signal) in [
        ("graceful", SIGTERM),
        ("graceful", SIGINT),
        ("own_signal", SIGINT),
    ] {
        let server = start_server(mode);
        let port = server.port;
        let in_flight = std::thread::spawn(move || get(port, "/slow"));
        std::thread::sleep(Duration::from_millis(100));
        send_signal(server.child.id(), signal);
        let response = in_flight.join().unwrap();
        let (status, stdout, stderr) = finish(server);
        check(
            &format!("{mode}_shutdown_on_signal_{signal}_finishes_the_request_in_flight"),
            response.starts_with("HTTP/1.1 200")
                && response.ends_with("slow done")
                && status.code() == Some(0)
                && stderr.contains("shut down gracefully")
                && has_span(&stdout, "GET /slow"),
            &|| {
                format!(
                    "response {response:?}\nstatus {status:?}\nstdout {stdout}\nstderr {stderr}"
                )
            },
        );
    }
}
