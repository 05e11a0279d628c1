//! Which database attribute keys to emit, from `OTEL_SEMCONV_STABILITY_OPT_IN`: the old keys the
//! Hypertrace backend reads (`db.system`, `db.statement`, ...) by default, the stable ones
//! (`db.system.name`, `db.query.text`, ...) for `database`, both for `database/dup`.

/// The key sets to emit for database spans.
pub(crate) type DbSemconv = crate::config::Semconv;

/// The installed agent's setting (its configuration read the variable through the same environment
/// source as every other one), or the process environment when no agent is installed yet.
pub(crate) fn current() -> DbSemconv {
    match crate::agent::current() {
        Some(agent) => agent.config.semconv.database,
        None => parse(
            std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN")
                .ok()
                .as_deref(),
        ),
    }
}

/// The `database` domain of a value of the variable (`http,database/dup`).
pub(crate) fn parse(v: Option<&str>) -> DbSemconv {
    DbSemconv::parse(v, "database")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_in_values() {
        let old = DbSemconv {
            old: true,
            stable: false,
        };
        let stable = DbSemconv {
            old: false,
            stable: true,
        };
        let dup = DbSemconv {
            old: true,
            stable: true,
        };
        for (v, want) in [
            (None, old),
            (Some(""), old),
            (Some("http"), old),
            (Some("http/dup"), old),
            (Some("database"), stable),
            (Some("http, database"), stable),
            (Some("database/dup"), dup),
            (Some("database,database/dup"), dup),
            (Some("databases"), old),
        ] {
            assert_eq!(parse(v), want, "{v:?}");
        }
    }
}
