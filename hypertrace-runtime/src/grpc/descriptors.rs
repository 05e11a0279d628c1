//! The message types of each method, from the descriptor sets an application already builds for
//! `tonic-reflection` (`FILE_DESCRIPTOR_SET`), so that captured messages can be shown as JSON.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use prost_reflect::prost::Message as _;
use prost_reflect::prost_types::FileDescriptorSet;
use prost_reflect::{DescriptorPool, MessageDescriptor};

use super::deferred::{register, MessageType};

/// The methods of the services in one or more encoded `FileDescriptorSet`s. Cheap to clone.
///
/// ```ignore
/// let descriptors = hypertrace::grpc::Descriptors::new(&[echo::FILE_DESCRIPTOR_SET])?;
/// Server::builder().layer(hypertrace::grpc::server_layer().descriptors(descriptors))
/// ```
#[derive(Clone, Default)]
pub struct Descriptors {
    /// By request path, `/package.Service/Method`: one lookup per call.
    methods: Arc<HashMap<String, Method>>,
}

/// What capture needs to know about one method.
#[derive(Clone, Debug)]
pub(crate) struct Method {
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
    pub client_streaming: bool,
    pub server_streaming: bool,
    /// Where the export thread finds the types again (`deferred::register`).
    pub pool: u32,
}

impl Method {
    /// The request's type, and whether the client streams.
    pub(crate) fn request(&self) -> (MessageType, bool) {
        let ty = MessageType {
            descriptor: self.input.clone(),
            pool: self.pool,
        };
        (ty, self.client_streaming)
    }

    /// The response's type, and whether the server streams.
    pub(crate) fn response(&self) -> (MessageType, bool) {
        let ty = MessageType {
            descriptor: self.output.clone(),
            pool: self.pool,
        };
        (ty, self.server_streaming)
    }
}

/// A descriptor set that could not be decoded, or whose files do not fit together.
#[derive(Debug)]
pub struct DescriptorError(String);

impl fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid gRPC descriptor set: {}", self.0)
    }
}

impl std::error::Error for DescriptorError {}

impl Descriptors {
    /// Reads encoded `FileDescriptorSet`s (as built with `--include_imports`, or by
    /// `tonic-prost-build`'s `file_descriptor_set_path`). The sets may come in any order: their
    /// files are added together, so a type may be defined in any of them; a file given twice is
    /// read once.
    pub fn new(sets: &[&[u8]]) -> Result<Descriptors, DescriptorError> {
        let mut fingerprint = Vec::with_capacity(sets.iter().map(|s| s.len() + 8).sum());
        for set in sets {
            fingerprint.extend_from_slice(&(set.len() as u64).to_le_bytes());
            fingerprint.extend_from_slice(set);
        }
        let (index, pool) = register(fingerprint, || Self::pool(sets))?;
        let mut methods = HashMap::new();
        for service in pool.services() {
            for m in service.methods() {
                methods.insert(
                    format!("/{}/{}", service.full_name(), m.name()),
                    Method {
                        input: m.input(),
                        output: m.output(),
                        client_streaming: m.is_client_streaming(),
                        server_streaming: m.is_server_streaming(),
                        pool: index,
                    },
                );
            }
        }
        Ok(Descriptors {
            methods: Arc::new(methods),
        })
    }

    fn pool(sets: &[&[u8]]) -> Result<DescriptorPool, DescriptorError> {
        let mut files = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, set) in sets.iter().enumerate() {
            let set = FileDescriptorSet::decode(*set)
                .map_err(|e| DescriptorError(format!("set #{i}: {e}")))?;
            // Sets built separately repeat their common imports (`google/protobuf/*.proto`).
            files.extend(
                set.file
                    .into_iter()
                    .filter(|f| seen.insert(f.name.clone().unwrap_or_default())),
            );
        }
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_protos(files)
            .map_err(|e| DescriptorError(e.to_string()))?;
        Ok(pool)
    }

    /// The method at this request path, if its service was in the sets.
    pub(crate) fn method(&self, path: &str) -> Option<&Method> {
        self.methods.get(path)
    }

    /// How many methods are known.
    pub fn len(&self) -> usize {
        self.methods.len()
    }

    /// True when no method is known (no sets, or sets without services).
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }
}

impl fmt::Debug for Descriptors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Descriptors")
            .field("methods", &self.methods.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test service's descriptor set (see `tests/proto/echo.proto`).
    pub(crate) const ECHO: &[u8] = include_bytes!("../../../tests/proto/echo.bin");

    #[test]
    fn methods_by_path() {
        let d = Descriptors::new(&[ECHO]).unwrap();
        assert_eq!(d.len(), 4);
        let m = d.method("/hypertrace.test.v1.Echo/ServerStream").unwrap();
        assert_eq!(m.input.full_name(), "hypertrace.test.v1.EchoRequest");
        assert_eq!(m.output.full_name(), "hypertrace.test.v1.EchoReply");
        assert!(!m.client_streaming && m.server_streaming);
        assert!(d.method("/hypertrace.test.v1.Echo/Nope").is_none());
        // The same set twice is read once.
        assert_eq!(Descriptors::new(&[ECHO, ECHO]).unwrap().len(), 4);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = Descriptors::new(&[b"\xff\xff\xff not a descriptor set"]).unwrap_err();
        assert!(err.to_string().starts_with("invalid gRPC descriptor set"));
    }
}
