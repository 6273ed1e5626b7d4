//! Meta's customer-file schema keys and how a sync's mapping uses them
//! (<https://developers.facebook.com/documentation/ads-commerce/marketing-api/reference/custom-audience/users>:
//! multi-key `schema` of `EXTERN_ID, EMAIL, PHONE, GEN, DOBY, DOBM, DOBD, LN, FN, FI, CT, ST,
//! ZIP, MADID, COUNTRY`).

use crate::config::{did_you_mean, SyncDef};

/// One schema key of a multi-key upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Email,
    Phone,
    Gen,
    Doby,
    Dobm,
    Dobd,
    Ln,
    Fn,
    Fi,
    Ct,
    St,
    Zip,
    Country,
    Madid,
    ExternId,
}

impl Key {
    /// Every key retl sends.
    pub(super) const ALL: [Key; 15] = [
        Key::Email,
        Key::Phone,
        Key::Gen,
        Key::Doby,
        Key::Dobm,
        Key::Dobd,
        Key::Ln,
        Key::Fn,
        Key::Fi,
        Key::Ct,
        Key::St,
        Key::Zip,
        Key::Country,
        Key::Madid,
        Key::ExternId,
    ];

    /// The name in `schema`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Key::Email => "EMAIL",
            Key::Phone => "PHONE",
            Key::Gen => "GEN",
            Key::Doby => "DOBY",
            Key::Dobm => "DOBM",
            Key::Dobd => "DOBD",
            Key::Ln => "LN",
            Key::Fn => "FN",
            Key::Fi => "FI",
            Key::Ct => "CT",
            Key::St => "ST",
            Key::Zip => "ZIP",
            Key::Country => "COUNTRY",
            Key::Madid => "MADID",
            Key::ExternId => "EXTERN_ID",
        }
    }

    /// The key a destination field names (case-insensitive: `email` is `EMAIL`).
    pub(super) fn parse(field: &str) -> Option<Key> {
        let field = field.trim();
        Key::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(field))
    }

    /// Whether Meta wants the value SHA-256 hashed. Mobile advertiser ids and the
    /// advertiser's own ids are sent as they are.
    pub(super) fn hashed(self) -> bool {
        !matches!(self, Key::Madid | Key::ExternId)
    }

    /// Whether the key names a person on its own, so that removing a row carrying only it
    /// removes that member (a first name or a zip code does not).
    pub(super) fn identifies(self) -> bool {
        matches!(self, Key::Email | Key::Phone | Key::Madid | Key::ExternId)
    }
}

/// The upload columns for `fields` (destination field and its key), in the given order.
pub(super) fn columns<'a>(
    fields: impl IntoIterator<Item = &'a String>,
) -> Result<Vec<(String, Key)>, String> {
    let mut out: Vec<(String, Key)> = Vec::new();
    let mut unknown = Vec::new();
    for field in fields {
        match Key::parse(field) {
            Some(key) => {
                if let Some((other, _)) = out.iter().find(|(_, k)| *k == key) {
                    return Err(format!(
                        "the mapping writes {} twice (`{other}` and `{field}`); map it once",
                        key.name()
                    ));
                }
                out.push((field.clone(), key));
            }
            None => unknown.push(field.as_str()),
        }
    }
    if let Some(first) = unknown.first() {
        let names: Vec<&str> = Key::ALL.iter().map(|k| k.name()).collect();
        let upper = first.to_ascii_uppercase();
        let hint = did_you_mean(&upper, names.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(format!(
            "destination fields must be Meta schema keys; `{}` {} not{hint}. Use: {}",
            unknown.join("`, `"),
            if unknown.len() == 1 { "is" } else { "are" },
            names.join(", ")
        ));
    }
    Ok(out)
}

/// Checks that a sync fits a custom audience; `Err` says what to change.
pub(super) fn check_sync(sync: &SyncDef) -> Result<(), String> {
    if sync.object.is_empty() || !sync.object.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the sync's `object` must be the custom audience id (digits, as Ads Manager shows \
             it), got `{}`",
            sync.object
        ));
    }
    columns(sync.mapping.keys())?;
    let keys = columns(&sync.key_fields)?;
    if !keys.iter().any(|(_, k)| k.identifies()) {
        let given: Vec<&str> = keys.iter().map(|(_, k)| k.name()).collect();
        return Err(format!(
            "the primary key maps to {}, which does not identify a person on its own: a delete \
             carries only the key fields, so Meta could not remove the member. Make the \
             primary key the column mapped to EMAIL, PHONE, MADID or EXTERN_ID (e.g. \
             `primary_key: email` with `EMAIL: email` in the mapping)",
            given.join(" + ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SafetyConfig, SyncMode};

    fn sync(object: &str, key: &[&str], fields: &[&str]) -> SyncDef {
        SyncDef {
            name: "audience".into(),
            description: None,
            source_connection: "w".into(),
            sql: "select 1".into(),
            incremental: None,
            primary_key: key.iter().map(|k| k.to_lowercase()).collect(),
            key_fields: key.iter().map(|k| k.to_string()).collect(),
            destination_connection: "meta".into(),
            object: object.into(),
            mapping: fields
                .iter()
                .map(|f| (f.to_string(), f.to_lowercase()))
                .collect(),
            mode: SyncMode::Mirror,
            delete_scope: Default::default(),
            safety: SafetyConfig::default(),
            alerts: Default::default(),
            schedule: None,
            triggers: vec![],
            shards: 4,
        }
    }

    #[test]
    fn the_key_must_identify_a_person() {
        assert!(check_sync(&sync("123", &["EMAIL"], &["EMAIL", "FN"])).is_ok());
        assert!(check_sync(&sync("123", &["extern_id"], &["extern_id", "PHONE"])).is_ok());
        let err = check_sync(&sync("123", &["FN"], &["EMAIL", "FN"])).unwrap_err();
        assert!(err.contains("primary key maps to FN"), "{err}");
        let err = check_sync(&sync("my audience", &["EMAIL"], &["EMAIL"])).unwrap_err();
        assert!(err.contains("audience id"), "{err}");
    }

    #[test]
    fn fields_must_be_schema_keys() {
        let err = check_sync(&sync("1", &["EMAIL"], &["EMAIL", "EMIAL2", "FIRST"])).unwrap_err();
        assert!(err.contains("`EMIAL2`, `FIRST` are not"), "{err}");
        let err = check_sync(&sync("1", &["EMAIL"], &["EMAIL", "PHOEN"])).unwrap_err();
        assert!(err.contains("did you mean `PHONE`"), "{err}");
        let err = check_sync(&sync("1", &["EMAIL"], &["EMAIL", "email"])).unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }
}
