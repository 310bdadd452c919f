//! FIX 4.4 (issue 13): the application mapping between the engine's events and
//! FIX messages (`app`), and the session layer as a state machine (`session`). The
//! codec and the transport come next.

pub mod app;
pub mod session;
