use std::rc::Rc;

#[hypertrace::handler]
async fn health() -> String {
    let shared = Rc::new(String::from("ok"));
    tokio::task::yield_now().await;
    (*shared).clone()
}

fn main() {}
