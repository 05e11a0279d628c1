//! `cargo run --example todos_sql --features sqlx-postgres`: a todo-list CRUD service on
//! PostgreSQL whose traces show each request's SQL statements as CLIENT spans under its SERVER span.
//!
//! The database: `DATABASE_URL` (`postgres://user:password@host:port/db`), else the server that
//! `scripts/start-databases.sh postgres` started (its details are in `.databases/env`). The only
//! change from plain sqlx is the pool's type: `hypertrace::sqlx::PgPool`.
//!
//! By default it serves on a free port of 127.0.0.1, sends itself a round of requests (create,
//! list, read, update in a transaction, delete, read a missing one), prints every span as one JSON
//! line on stdout (LOGGING reporter, `examples/todos_sql.yaml`), each request's status on stderr,
//! and exits. With `TODOS_ADDR=127.0.0.1:8080` it serves there until Ctrl-C instead.

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use hypertrace::sqlx::sqlx::{self, postgres::PgConnectOptions};
use hypertrace::sqlx::PgPool;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Todo {
    id: i64,
    title: String,
    done: bool,
}

/// A row as sqlx decodes it (a tuple: the `FromRow` derive would need sqlx's macros).
type TodoRow = (i64, String, bool);

impl From<TodoRow> for Todo {
    fn from((id, title, done): TodoRow) -> Self {
        Todo { id, title, done }
    }
}

#[derive(Deserialize)]
struct NewTodo {
    title: String,
}

#[derive(Deserialize)]
struct Change {
    title: Option<String>,
    done: Option<bool>,
}

type ApiResult<T> = Result<T, (StatusCode, String)>;

fn internal(e: sqlx::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

#[hypertrace::handler]
async fn create(
    State(db): State<PgPool>,
    Json(new): Json<NewTodo>,
) -> ApiResult<(StatusCode, Json<Todo>)> {
    let todo = sqlx::query_as::<_, TodoRow>(
        "INSERT INTO todos (title) VALUES ($1) RETURNING id, title, done",
    )
    .bind(new.title)
    .fetch_one(&db)
    .await
    .map_err(internal)?;
    Ok((StatusCode::CREATED, Json(todo.into())))
}

#[hypertrace::handler]
async fn list(State(db): State<PgPool>) -> ApiResult<Json<Vec<Todo>>> {
    let todos = sqlx::query_as::<_, TodoRow>("SELECT id, title, done FROM todos ORDER BY id")
        .fetch_all(&db)
        .await
        .map_err(internal)?;
    Ok(Json(todos.into_iter().map(Todo::from).collect()))
}

/// In a `#[tracing::instrument]` function: its span sits between the request's and the query's.
#[tracing::instrument(skip(db))]
async fn find(db: &PgPool, id: i64) -> Result<Option<Todo>, sqlx::Error> {
    sqlx::query_as::<_, TodoRow>("SELECT id, title, done FROM todos WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
        .map(|row| row.map(Todo::from))
}

#[hypertrace::handler(name = "GET /todos/{id}")]
async fn read(State(db): State<PgPool>, Path(id): Path<i64>) -> ApiResult<Json<Todo>> {
    match find(&db, id).await.map_err(internal)? {
        Some(t) => Ok(Json(t)),
        None => Err((StatusCode::NOT_FOUND, format!("no todo {id}"))),
    }
}

/// A transaction: BEGIN, the SELECT ... FOR UPDATE, the UPDATE and COMMIT are four spans.
#[hypertrace::handler]
async fn update(
    State(db): State<PgPool>,
    Path(id): Path<i64>,
    Json(change): Json<Change>,
) -> ApiResult<Json<Todo>> {
    let mut tx = db.begin().await.map_err(internal)?;
    let Some(row) =
        sqlx::query_as::<_, TodoRow>("SELECT id, title, done FROM todos WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut tx)
            .await
            .map_err(internal)?
    else {
        tx.rollback().await.map_err(internal)?;
        return Err((StatusCode::NOT_FOUND, format!("no todo {id}")));
    };
    let mut todo = Todo::from(row);
    todo.title = change.title.unwrap_or(todo.title);
    todo.done = change.done.unwrap_or(todo.done);
    sqlx::query("UPDATE todos SET title = $1, done = $2 WHERE id = $3")
        .bind(&todo.title)
        .bind(todo.done)
        .bind(id)
        .execute(&mut tx)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok(Json(todo))
}

#[hypertrace::handler]
async fn delete(State(db): State<PgPool>, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    let done = sqlx::query("DELETE FROM todos WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .map_err(internal)?;
    Ok(if done.rows_affected() == 1 {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    })
}

fn router(db: PgPool) -> Router {
    Router::new()
        .route("/todos", get(list).post(create))
        .route("/todos/{id}", get(read).patch(update).delete(delete))
        .with_state(db)
}

/// `DATABASE_URL`, else the connection details `scripts/start-databases.sh` wrote.
async fn connect() -> Result<PgPool, Box<dyn Error>> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(PgPool::connect(&url).await?);
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/.databases/env");
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("set DATABASE_URL, or start a server with scripts/start-databases.sh postgres ({path}: {e})")
    })?;
    let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let var = |k: &str| {
        vars.get(k)
            .copied()
            .ok_or_else(|| format!("{k} missing in {path}"))
    };
    let options = PgConnectOptions::new()
        .host(var("HT_TEST_PG_HOST")?)
        .port(var("HT_TEST_PG_PORT")?.parse()?)
        .username(var("HT_TEST_PG_USER")?)
        .password(var("HT_TEST_PG_PASSWORD")?)
        .database(var("HT_TEST_PG_DATABASE")?);
    Ok(PgPool::connect_with(options).await?)
}

#[hypertrace::main(config = "examples/todos_sql.yaml")]
async fn main() -> Result<(), Box<dyn Error>> {
    let db = connect().await?;
    // Set-up through the sqlx pool inside: no spans for it.
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS todos (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL, done BOOLEAN NOT NULL DEFAULT false)",
    )
    .execute(db.inner())
    .await?;

    if let Ok(addr) = std::env::var("TODOS_ADDR") {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("todos_sql: serving on http://{addr} (Ctrl-C to stop)");
        axum::serve(
            listener,
            router(db).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(hypertrace::shutdown_signal())
        .await?;
        return Ok(());
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(db).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    eprintln!("todos_sql: service on {base}; spans follow on stdout");
    let http = reqwest::Client::builder().no_proxy().build()?;
    let created: serde_json::Value = serde_json::from_str(
        &http
            .post(format!("{base}/todos"))
            .header("content-type", "application/json")
            .body(r#"{"title":"write the SQL spans"}"#)
            .send()
            .await?
            .text()
            .await?,
    )?;
    let id = created["id"].as_i64().ok_or("no id in the created todo")?;
    let calls = [
        ("GET", format!("{base}/todos"), None),
        ("GET", format!("{base}/todos/{id}"), None),
        (
            "PATCH",
            format!("{base}/todos/{id}"),
            Some(serde_json::json!({ "done": true })),
        ),
        ("DELETE", format!("{base}/todos/{id}"), None),
        ("GET", format!("{base}/todos/{id}"), None),
    ];
    eprintln!("todos_sql: POST /todos -> 201");
    for (method, url, body) in calls {
        let mut req = http.request(method.parse()?, &url);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let status = req.send().await?.status();
        eprintln!(
            "todos_sql: {method} {} -> {}",
            url.trim_start_matches(&base),
            status.as_u16()
        );
    }
    // Returning flushes: every span above is printed before the process exits.
    Ok(())
}
