//! The complaint as the hub understands it: what a partner may file, how it is checked,
//! masked and shown, its statuses, and the events of its history.

pub mod complaint;
pub mod events;
pub mod masking;
pub mod status;
pub mod templates;
pub mod validation;

pub use complaint::{ComplaintInput, ComplaintView, EventView, Rung};
pub use status::Status;
pub use validation::FieldError;
