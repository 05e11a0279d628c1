struct Health {
    ok: bool,
}

#[hypertrace::handler]
async fn health() -> Health {
    Health { ok: true }
}

fn main() {}
