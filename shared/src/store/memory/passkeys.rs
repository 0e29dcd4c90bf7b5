//! `PasskeyStore` in memory, with the same contract as the DynamoDB adapter.

use std::collections::HashMap;

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::StoreError;
use crate::domain::ids::{CeremonyId, PasskeyId, UserId};
use crate::domain::passkey::{Ceremony, MAX_PASSKEYS, Passkey, PasskeyStore};

#[derive(Default)]
pub(super) struct MemoryPasskeys {
    ceremonies: HashMap<CeremonyId, Ceremony>,
    passkeys: HashMap<PasskeyId, Passkey>,
    /// Credential id → its passkey: the uniqueness claim.
    claims: HashMap<Vec<u8>, PasskeyId>,
}

#[async_trait]
impl PasskeyStore for MemoryStore {
    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        let mut store = self.passkeys.lock().unwrap();
        store.ceremonies.insert(ceremony.id, ceremony.clone());
        Ok(())
    }

    async fn take_ceremony(&self, id: CeremonyId) -> Result<Option<Ceremony>, StoreError> {
        Ok(self.passkeys.lock().unwrap().ceremonies.remove(&id))
    }

    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<Passkey>, StoreError> {
        let store = self.passkeys.lock().unwrap();
        Ok(store
            .passkeys
            .values()
            .filter(|p| p.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn add_passkey(&self, passkey: &Passkey) -> Result<(), StoreError> {
        let mut store = self.passkeys.lock().unwrap();
        if store.claims.contains_key(&passkey.credential_id) {
            return Err(StoreError::CredentialTaken);
        }
        let held = store
            .passkeys
            .values()
            .filter(|p| p.user_id == passkey.user_id)
            .count();
        if held >= MAX_PASSKEYS {
            return Err(StoreError::TooManyPasskeys);
        }
        store
            .claims
            .insert(passkey.credential_id.clone(), passkey.id);
        store.passkeys.insert(passkey.id, passkey.clone());
        Ok(())
    }

    async fn find_passkey_by_credential(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<Passkey>, StoreError> {
        let store = self.passkeys.lock().unwrap();
        Ok(store
            .claims
            .get(credential_id)
            .and_then(|id| store.passkeys.get(id))
            .cloned())
    }

    async fn save_passkey_use(
        &self,
        passkey: &Passkey,
        previous_counter: u32,
    ) -> Result<(), StoreError> {
        let mut store = self.passkeys.lock().unwrap();
        let stored = store
            .passkeys
            .get_mut(&passkey.id)
            .ok_or(StoreError::NotFound)?;
        if stored.counter != previous_counter {
            return Err(StoreError::VersionConflict);
        }
        *stored = passkey.clone();
        Ok(())
    }

    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> Result<(), StoreError> {
        let mut store = self.passkeys.lock().unwrap();
        match store.passkeys.get(&id) {
            Some(passkey) if passkey.user_id == user_id => {
                let credential_id = passkey.credential_id.clone();
                store.passkeys.remove(&id);
                store.claims.remove(&credential_id);
                Ok(())
            }
            _ => Err(StoreError::NotFound),
        }
    }

    async fn delete_all_passkeys(&self, user_id: UserId) -> Result<(), StoreError> {
        let mut store = self.passkeys.lock().unwrap();
        let theirs: Vec<Passkey> = store
            .passkeys
            .values()
            .filter(|p| p.user_id == user_id)
            .cloned()
            .collect();
        for passkey in theirs {
            store.passkeys.remove(&passkey.id);
            store.claims.remove(&passkey.credential_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        crate::store::contract::passkeys::run_all(&super::MemoryStore::new()).await;
    }
}
