//! Why a domain operation was refused: a typed [`Refusal`] naming the form field, the state
//! or the role at fault; it leaves a transaction as it is (rolling it back).

use qiao_hub::StoreError;

/// Why a domain operation was refused. `field` names the form field at fault (if one is);
/// `key` is the catalog key of the message, `args` fill its placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Bad input in a field.
    Field {
        /// The form field.
        field: &'static str,
        /// Catalog key of the message.
        key: &'static str,
        /// Placeholder values.
        args: Vec<(&'static str, String)>,
    },
    /// The caller's role or relation to the record does not allow it.
    Forbidden,
    /// Not allowed in the record's current state (catalog key of the message).
    State(&'static str),
    /// No such record.
    NotFound,
    /// Storage failed.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

pub(super) fn field(field: &'static str, key: &'static str) -> Refusal {
    Refusal::Field {
        field,
        key,
        args: Vec::new(),
    }
}

/// Result of a domain operation.
pub type Outcome<T> = Result<T, Refusal>;
