//! Routes files: reload, rejection, start-up errors, drain.
