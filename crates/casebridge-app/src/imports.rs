//! (being moved here from the API handlers)
