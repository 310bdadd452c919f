//! FIX 4.4 (issue 13): the application mapping between the engine's events and
//! FIX messages (`app`). The codec and the session layer come next.

pub mod app;
