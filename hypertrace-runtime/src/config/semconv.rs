//! `OTEL_SEMCONV_STABILITY_OPT_IN`: which semantic-convention keys the spans carry, per domain.
//!
//! The variable is a comma list of domains: `http` switches HTTP spans to the stable keys, `http/dup`
//! emits both the old and the stable keys; likewise `database` / `database/dup` and `rpc` / `rpc/dup`.
//! Without an entry for a domain its spans carry the old keys, which are what the Hypertrace backend
//! reads. It is read through the same environment source as every other variable, so
//! `ConfigBuilder::env_vars` controls it in tests.

/// The key sets of one domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Semconv {
    /// The pre-stable keys (`http.method`, `db.statement`, ...).
    pub old: bool,
    /// The stable keys (`http.request.method`, `db.query.text`, ...).
    pub stable: bool,
}

impl Default for Semconv {
    fn default() -> Self {
        Semconv {
            old: true,
            stable: false,
        }
    }
}

impl Semconv {
    /// The setting of `domain` (`"http"`, `"database"`, `"rpc"`) in a value of the variable:
    /// `<domain>/dup` wins over `<domain>`.
    pub fn parse(value: Option<&str>, domain: &str) -> Semconv {
        let items = || value.unwrap_or("").split(',').map(str::trim);
        let dup = items().any(|i| i.strip_prefix(domain) == Some("/dup"));
        if dup {
            Semconv {
                old: true,
                stable: true,
            }
        } else if items().any(|i| i == domain) {
            Semconv {
                old: false,
                stable: true,
            }
        } else {
            Semconv::default()
        }
    }
}

/// The key sets of every domain the agent records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SemconvOptIn {
    /// HTTP server and client spans.
    pub http: Semconv,
    /// SQL client spans.
    pub database: Semconv,
    /// gRPC server and client spans.
    pub rpc: Semconv,
}

impl SemconvOptIn {
    /// From a value of `OTEL_SEMCONV_STABILITY_OPT_IN` (`None`: unset).
    pub fn parse(value: Option<&str>) -> SemconvOptIn {
        SemconvOptIn {
            http: Semconv::parse(value, "http"),
            database: Semconv::parse(value, "database"),
            rpc: Semconv::parse(value, "rpc"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: Semconv = Semconv {
        old: true,
        stable: false,
    };
    const STABLE: Semconv = Semconv {
        old: false,
        stable: true,
    };
    const BOTH: Semconv = Semconv {
        old: true,
        stable: true,
    };

    #[test]
    fn each_domain_is_switched_on_its_own() {
        assert_eq!(SemconvOptIn::parse(None), SemconvOptIn::default());
        assert_eq!(Semconv::parse(None, "http"), OLD);
        assert_eq!(Semconv::parse(Some("http"), "http"), STABLE);
        assert_eq!(Semconv::parse(Some("database, http/dup"), "http"), BOTH);
        assert_eq!(Semconv::parse(Some("http, http/dup"), "http"), BOTH);
        assert_eq!(Semconv::parse(Some("database"), "http"), OLD);
        assert_eq!(Semconv::parse(Some("database"), "database"), STABLE);
        assert_eq!(Semconv::parse(Some("rpc/dup"), "rpc"), BOTH);
        // Whole items only: `https` is not `http`, `http/dupe` not `http/dup`.
        assert_eq!(Semconv::parse(Some("https,http/dupe"), "http"), OLD);
    }
}
