pub struct MainOptions {
    pub service_name: Option<&'static str>,
    pub config_file: Option<&'static str>,
    pub tracing_subscriber: bool,
    pub package_name: &'static str,
}
pub struct Guard;
pub struct Agent;
pub fn init_main(opts: MainOptions) -> Guard { let _ = opts; Guard }
pub async fn shutdown_signal() {}
