//! resp (under construction)
