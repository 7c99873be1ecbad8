//! airlock's Slack integration: reviewers approve or reject change requests
//! from one Block Kit message, with all the context, without copying SQL.
//!
//! - [`render`] draws the review message, the reject modal and the DMs (pure).
//! - [`delivery`] posts and updates messages from the store's durable outbox.
//! - [`interact`] turns verified clicks into workflow calls (same rules as the CLI);
//!   [`http`] verifies signed HTTP payloads, [`socket`] receives over Socket Mode.
//!
//! It talks to Slack through `slack-morphism` and to the rest of airlock
//! only through the workflow service and the store port.

pub mod api;
pub mod delivery;
pub mod directory;
pub mod http;
pub mod interact;
pub mod render;
pub mod socket;
pub mod text;

pub use api::{ApiError, SlackApi};
pub use delivery::{Deliverer, DeliveryOptions};
pub use directory::Directory;
pub use http::{HttpReceiver, INTERACTIONS_PATH};
pub use interact::Interactions;
pub use socket::SocketMode;
