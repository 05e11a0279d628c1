pub fn otel_layer() {}
