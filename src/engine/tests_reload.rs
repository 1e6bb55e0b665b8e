//! Reload on the virtual clock.
