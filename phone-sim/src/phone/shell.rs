//! The IO shell of a session: pumps bytes between a [`DataChannel`] (the relay's tunnel, or
//! any other byte pipe), the [`Advertiser`] and the session machine (`crate::session`), in the
//! machine's drain order, and answers what the machine asks of the phone: storing an offered
//! link, and running the desktop's command (the user's approval, which may be an async
//! prompt, included). Every protocol decision is the machine's.

use tokio::time::Instant;
use tunnel_client::Tunnel;

use super::Phone;
use crate::authenticator::{self, Attestation, Creation};
use crate::error::PhoneError;
use crate::medium::{Advertiser, BoxFuture};
use crate::session::{Answer, Command, Event, Outcome, PhoneSession, Transmit};
use crate::store::{now_unix, StoredLink};
use hybrid_protocol::eid::SERVICE_UUID_FIDO;
use rand_core::OsRng;

/// A data channel a session runs over: one message in, one message out, close. Errors come
/// back as [`PhoneError`]s with the context the caller names.
pub(crate) trait DataChannel: Send {
    /// Sends one message.
    fn send<'a>(
        &'a mut self,
        bytes: Vec<u8>,
        context: &'static str,
    ) -> BoxFuture<'a, Result<(), PhoneError>>;
    /// The next message; `Ok(None)` when the other side ended the channel.
    fn recv(&mut self, context: &'static str)
        -> BoxFuture<'_, Result<Option<Vec<u8>>, PhoneError>>;
    /// Closes the channel (best effort, bounded).
    fn close(&mut self) -> BoxFuture<'_, ()>;
}

impl DataChannel for Tunnel {
    fn send<'a>(
        &'a mut self,
        bytes: Vec<u8>,
        context: &'static str,
    ) -> BoxFuture<'a, Result<(), PhoneError>> {
        Box::pin(async move {
            Self::send(self, bytes)
                .await
                .map_err(|error| PhoneError::Relay { context, error })
        })
    }

    fn recv(
        &mut self,
        context: &'static str,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, PhoneError>> {
        Box::pin(async move {
            Self::recv(self)
                .await
                .map_err(|error| PhoneError::Relay { context, error })
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(Self::close(self))
    }
}

/// The store record of a link a QR session offers; its creation time is set when it is
/// stored.
pub(super) struct NewLink(pub(super) StoredLink);

impl Phone {
    /// Runs `session` to its end over `channel`, advertising on `advertiser`; `link` is the
    /// record to store when the machine asks (a QR session offering a link).
    pub(super) async fn run_session(
        &mut self,
        mut session: PhoneSession,
        channel: &mut dyn DataChannel,
        advertiser: &mut dyn Advertiser,
        mut link: Option<NewLink>,
    ) -> Result<Outcome, PhoneError> {
        let mut open = true;
        loop {
            while let Some(t) = session.poll_transmit() {
                match t {
                    Transmit::Advertise(advert) => {
                        advertiser.start(SERVICE_UUID_FIDO, &advert).await?;
                    }
                    Transmit::StopAdvertising => advertiser.stop().await?,
                    Transmit::Send(frame) => {
                        let kind = frame.kind;
                        if let Err(e) = channel.send(frame.bytes, kind.context()).await {
                            open = false;
                            session.handle_send_failed(kind, e);
                        }
                    }
                }
            }
            if let Some(event) = session.poll_event() {
                let now = Instant::now().into_std();
                match event {
                    Event::StoreLink { link_id } => {
                        let record = link.take().filter(|l| l.0.link_id == hex::encode(link_id));
                        self.store_link(record)?;
                        session.handle_link_stored(now);
                    }
                    Event::Request(command) => {
                        let answer = self.answer(*command).await?;
                        session.handle_answer(Instant::now().into_std(), answer);
                    }
                }
                continue;
            }
            if let Some(end) = session.poll_end() {
                if open {
                    channel.close().await;
                }
                return end;
            }
            let waiting = session.waiting_for();
            let received = match session.poll_timeout() {
                Some(deadline) => tokio::select! {
                    r = channel.recv(waiting) => Some(r),
                    () = tokio::time::sleep_until(Instant::from_std(deadline)) => None,
                },
                None => Some(channel.recv(waiting).await),
            };
            let now = Instant::now().into_std();
            match received {
                None => session.handle_timeout(now),
                Some(Ok(Some(bytes))) => session.handle_message(now, &bytes, &mut OsRng),
                Some(Ok(None)) => {
                    open = false;
                    session.handle_channel_closed(now);
                }
                Some(Err(e)) => {
                    open = false;
                    session.handle_channel_lost(now, e);
                }
            }
        }
    }

    /// Stores the link a QR session offers, before its linking information goes out.
    fn store_link(&mut self, link: Option<NewLink>) -> Result<(), PhoneError> {
        let Some(NewLink(mut record)) = link else {
            return Err(PhoneError::Config(
                "the session offered a link this phone did not prepare".into(),
            ));
        };
        record.created_at = now_unix();
        self.store.refresh()?;
        self.store.add_link(record);
        self.store.save()
    }

    /// Runs the desktop's command on the authenticator: it asks the user (per
    /// `config.approve`) and, for makeCredential, stores the new credential.
    async fn answer(&mut self, command: Command) -> Result<Answer, PhoneError> {
        Ok(match command {
            Command::MakeCredential(req) => {
                if self.config.attestation == Attestation::PackedX5c {
                    self.make_attestation_ca()?;
                }
                let creation = Creation {
                    attestation: self.config.attestation,
                    ca: self.attestation_ca.as_ref(),
                    kind: self.config.credential_kind,
                };
                authenticator::make_credential(
                    &mut self.store,
                    &req,
                    self.config.approve,
                    creation,
                    &mut OsRng,
                )
                .await
                .map(|(resp, done)| (resp.to_cbor(), done))
            }
            Command::GetAssertion(req) => {
                authenticator::get_assertion(&self.store, &req, self.config.approve)
                    .await
                    .map(|(resp, done)| (resp.to_cbor(), done))
            }
        })
    }
}
