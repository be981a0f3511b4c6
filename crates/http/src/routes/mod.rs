//! One router per domain.

pub mod auth;
pub mod cameras;
pub mod logs;
pub mod system;
pub mod users;
