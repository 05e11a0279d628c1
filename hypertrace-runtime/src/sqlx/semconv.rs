//! Which database attribute keys to emit, from `OTEL_SEMCONV_STABILITY_OPT_IN`: the old keys the
//! Hypertrace backend reads (`db.system`, `db.statement`, ...) by default, the stable ones
//! (`db.system.name`, `db.query.text`, ...) for `database`, both for `database/dup`.

/// The key sets to emit for database spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DbSemconv {
    pub old: bool,
    pub stable: bool,
}

impl DbSemconv {
    /// Reads `OTEL_SEMCONV_STABILITY_OPT_IN` from the process environment.
    pub fn from_env() -> DbSemconv {
        DbSemconv::parse(
            std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN")
                .ok()
                .as_deref(),
        )
    }

    /// The variable is a comma list shared with other domains (`http,database/dup`); `database/dup`
    /// wins over `database`, and other items are not ours.
    pub fn parse(v: Option<&str>) -> DbSemconv {
        let items = || v.unwrap_or("").split(',').map(str::trim);
        if items().any(|i| i == "database/dup") {
            DbSemconv {
                old: true,
                stable: true,
            }
        } else if items().any(|i| i == "database") {
            DbSemconv {
                old: false,
                stable: true,
            }
        } else {
            DbSemconv {
                old: true,
                stable: false,
            }
        }
    }
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
            assert_eq!(DbSemconv::parse(v), want, "{v:?}");
        }
    }
}
