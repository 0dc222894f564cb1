//! Certificate mode (PROTOCOL §9).
