//! `resizelet check`: can in-place resize work on this host?
