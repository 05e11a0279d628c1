//! What a statement's text gives every span of it (operation, table, span name, the text as
//! recorded), worked out once per thread and statement and then shared.
//!
//! An application runs the same few statements over and over, and sqlx hands the agent the same
//! text each time: lexing it for the summary (and, with `sanitized`, again for the sanitized text)
//! cost more than the rest of the agent's work on a short query. So each thread keeps the last
//! [`SLOTS`] statements it described, keyed by their full text, dialect and capture mode; a hit
//! costs a comparison of the text and a few reference-count increments, and the attribute values
//! are shared between the spans (no string copies). The result is a pure function of the key, so
//! a hit gives exactly what describing the text again would.
//!
//! Bounded: statements longer than [`MAX_MEMO_LEN`] bytes (bulk inserts whose values are written
//! inline, which rarely repeat) are described every time and not kept, so a thread holds at most
//! `SLOTS` × (2 × `MAX_MEMO_LEN` + the summary) bytes. The key is the text as the application
//! wrote it, literals included, also under `sanitized`: like sqlx's own statement cache, which
//! holds the same text, it stays in the process and is never exported.

use std::cell::RefCell;
use std::sync::Arc;

use opentelemetry::StringValue;

use super::statement::{sanitize, summarize, Dialect};
use crate::config::StatementCapture;

/// Statements remembered per thread.
const SLOTS: usize = 32;
/// Longer statements are not remembered.
const MAX_MEMO_LEN: usize = 2048;

/// What the spans of one statement share.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Described {
    /// The first keyword, upper-cased (`SELECT`).
    pub operation: Option<StringValue>,
    /// The one table it reads or writes, when that is unambiguous.
    pub table: Option<StringValue>,
    /// `"{operation} {table}"`, else the operation, else `None` (the span is then named for the
    /// system).
    pub name: Option<StringValue>,
    /// The statement as `rustagent.sql.statement` says to record it: as written, sanitized, or
    /// not at all.
    pub text: Option<StringValue>,
}

fn shared(s: String) -> StringValue {
    StringValue::from(Arc::<str>::from(s))
}

/// Reads `sql` afresh.
fn describe_now(sql: &str, dialect: Dialect, mode: StatementCapture) -> Described {
    let summary = summarize(sql, dialect);
    let name = summary.name().map(shared);
    Described {
        text: match mode {
            StatementCapture::Full => Some(shared(sql.to_owned())),
            StatementCapture::Sanitized => Some(shared(sanitize(sql, dialect))),
            StatementCapture::Off => None,
        },
        operation: summary.operation.map(shared),
        table: summary.table.map(shared),
        name,
    }
}

struct Slot {
    sql: Box<str>,
    dialect: Dialect,
    mode: StatementCapture,
    described: Described,
}

#[derive(Default)]
struct Memo {
    slots: Vec<Slot>,
    /// The slot the next new statement replaces once all are used (oldest first).
    next: usize,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// What `sql` gives its spans, from this thread's memo when it was described before.
pub(super) fn describe(sql: &str, dialect: Dialect, mode: StatementCapture) -> Described {
    if sql.len() > MAX_MEMO_LEN {
        return describe_now(sql, dialect, mode);
    }
    let memo = MEMO.try_with(|m| {
        let mut m = m.borrow_mut();
        if let Some(s) = m
            .slots
            .iter()
            .find(|s| s.dialect == dialect && s.mode == mode && *s.sql == *sql)
        {
            return s.described.clone();
        }
        let described = describe_now(sql, dialect, mode);
        let slot = Slot {
            sql: sql.into(),
            dialect,
            mode,
            described: described.clone(),
        };
        if m.slots.len() < SLOTS {
            m.slots.push(slot);
        } else {
            let i = m.next;
            m.slots[i] = slot;
            m.next = (i + 1) % SLOTS;
        }
        described
    });
    // The thread is exiting (its locals are gone): describe without the memo.
    memo.unwrap_or_else(|_| describe_now(sql, dialect, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [StatementCapture; 3] = [
        StatementCapture::Full,
        StatementCapture::Sanitized,
        StatementCapture::Off,
    ];

    /// A remembered statement gives what describing it again gives, for every mode and dialect,
    /// and the mode and dialect are part of the key.
    #[test]
    fn a_hit_is_what_describing_again_gives() {
        let sql = "SELECT id, title FROM todos WHERE title = 'secret' AND id = $1";
        for dialect in [Dialect::Postgres, Dialect::MySql] {
            for mode in MODES {
                let first = describe(sql, dialect, mode);
                assert_eq!(first, describe_now(sql, dialect, mode));
                assert_eq!(describe(sql, dialect, mode), first);
            }
        }
        let full = describe(sql, Dialect::Postgres, StatementCapture::Full);
        let sanitized = describe(sql, Dialect::Postgres, StatementCapture::Sanitized);
        assert_eq!(full.text.as_ref().map(|t| t.as_str()), Some(sql));
        assert_eq!(
            sanitized.text.as_ref().map(|t| t.as_str()),
            Some("SELECT id, title FROM todos WHERE title = ? AND id = $1")
        );
        assert_eq!(full.name.as_ref().map(|t| t.as_str()), Some("SELECT todos"));
        assert_eq!(
            describe(sql, Dialect::Postgres, StatementCapture::Off).text,
            None
        );
    }

    /// Statements that differ only past the part a summary reads, or by length, are told apart;
    /// more statements than slots replace the oldest, and each still gets its own description.
    #[test]
    fn distinct_statements_never_share_a_slot() {
        let texts: Vec<String> = (0..SLOTS * 2 + 3)
            .map(|i| format!("UPDATE t{} SET v = {i} WHERE id = 1", i % 7))
            .collect();
        for round in 0..2 {
            for t in &texts {
                let d = describe(t, Dialect::Postgres, StatementCapture::Full);
                assert_eq!(
                    d,
                    describe_now(t, Dialect::Postgres, StatementCapture::Full),
                    "round {round}: {t}"
                );
                assert_eq!(d.text.as_ref().map(|s| s.as_str()), Some(t.as_str()));
            }
        }
        MEMO.with(|m| assert_eq!(m.borrow().slots.len(), SLOTS));
        let a = "SELECT 1";
        let b = "SELECT 1 ";
        assert_eq!(
            describe(b, Dialect::Postgres, StatementCapture::Full)
                .text
                .map(|s| s.as_str().to_owned()),
            Some(b.to_owned())
        );
        assert_eq!(
            describe(a, Dialect::Postgres, StatementCapture::Full)
                .text
                .map(|s| s.as_str().to_owned()),
            Some(a.to_owned())
        );
    }

    /// A long statement is described but not kept.
    #[test]
    fn long_statements_are_not_remembered() {
        let long = format!("INSERT INTO t (v) VALUES {}", "(1),".repeat(MAX_MEMO_LEN));
        let before = MEMO.with(|m| m.borrow().slots.len());
        let d = describe(&long, Dialect::Postgres, StatementCapture::Sanitized);
        assert_eq!(d.table.as_ref().map(|t| t.as_str()), Some("t"));
        assert_eq!(MEMO.with(|m| m.borrow().slots.len()), before);
        assert!(MEMO.with(|m| m.borrow().slots.iter().all(|s| s.sql.len() <= MAX_MEMO_LEN)));
    }
}
