//! One router per domain.

pub mod auth;
pub mod cameras;
pub mod system;
pub mod users;
