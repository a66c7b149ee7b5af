//! Placeholder for the hash type (replaced by the types family).

#[derive(Clone, Debug, Default)]
pub struct HashValue {
    pub items: std::collections::HashMap<bytes::Bytes, bytes::Bytes>,
}

impl HashValue {
    pub fn encoding(&self) -> &'static str {
        ":collections::HashMap<bytes::Bytes, bytes::Bytes>:listpack"
    }

    pub fn memory_usage(&self) -> usize {
        self.items.len() * 32
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
