//! sentinel (under construction)
