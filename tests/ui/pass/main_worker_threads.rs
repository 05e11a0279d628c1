#![deny(warnings)]

/// The program.
#[hypertrace::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn main() {
    #![allow(clippy::let_unit_value)]
    let unit = tokio::task::spawn(async {}).await.unwrap();
    let () = unit;
}
