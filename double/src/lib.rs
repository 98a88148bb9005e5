//! An in-process Kubernetes API-server double (see README of the crate).
