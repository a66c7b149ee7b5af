//! Placeholder for the zset type (replaced by the types family).

#[derive(Clone, Debug, Default)]
pub struct ZSetValue {
    pub items: Vec<(bytes::Bytes, f64)>,
}

impl ZSetValue {
    pub fn encoding(&self) -> &'static str {
        ":Bytes, f64)>:listpack"
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
