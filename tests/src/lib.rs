//! Integration and end-to-end tests of retl live in `tests/`.
