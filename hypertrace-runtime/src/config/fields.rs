//! STUB (config helper replaces this file).
