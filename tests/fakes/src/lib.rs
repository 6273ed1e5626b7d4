//! Protocol fakes of SaaS destination APIs, written from the vendors' public API references.
