//! Placeholder for the list type (replaced by the types family).

#[derive(Clone, Debug, Default)]
pub struct ListValue {
    pub items: std::collections::VecDeque<bytes::Bytes>,
}

impl ListValue {
    pub fn encoding(&self) -> &'static str {
        ":collections::VecDeque<bytes::Bytes>:listpack"
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
