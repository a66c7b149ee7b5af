//! Placeholder for the set type (replaced by the types family).

#[derive(Clone, Debug, Default)]
pub struct SetValue {
    pub items: std::collections::HashSet<bytes::Bytes>,
}

impl SetValue {
    pub fn encoding(&self) -> &'static str {
        ":collections::HashSet<bytes::Bytes>:listpack"
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
