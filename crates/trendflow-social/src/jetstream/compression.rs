//! Jetstream's optional compression (`compress=true`): each event is sent as a binary
//! message holding one zstd frame, compressed with a dictionary Jetstream trained on the
//! firehose's JSON. Decoding needs that exact dictionary, vendored in
//! `assets/jetstream/` (see its PROVENANCE.md).

use std::io::Read;
use std::sync::OnceLock;

use zstd::dict::DecoderDictionary;

/// Jetstream's zstd dictionary for `/subscribe` (`compress=true`), byte for byte as
/// Jetstream ships it.
pub const ZSTD_DICTIONARY: &[u8] = include_bytes!("../../assets/jetstream/zstd_dictionary");

/// The id written in [`ZSTD_DICTIONARY`]'s header, which every frame compressed with it
/// names.
pub const ZSTD_DICTIONARY_ID: u32 = 1_612_007_021;

/// An event larger than this once decompressed is refused (Jetstream's events are records of
/// at most a few hundred kilobytes): a corrupt or hostile frame cannot exhaust memory.
const MAX_EVENT_BYTES: usize = 16 << 20;

/// The dictionary digested once for the process: digesting 110 KB costs more than
/// decompressing an event.
fn prepared_dictionary() -> &'static DecoderDictionary<'static> {
    static DICTIONARY: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    DICTIONARY.get_or_init(|| DecoderDictionary::copy(ZSTD_DICTIONARY))
}

/// Decompresses events, reusing one zstd context.
pub(crate) struct EventDecompressor {
    context: zstd::bulk::Decompressor<'static>,
}

impl EventDecompressor {
    pub(crate) fn new() -> Result<Self, String> {
        let context = zstd::bulk::Decompressor::with_prepared_dictionary(prepared_dictionary())
            .map_err(|e| format!("zstd: {e}"))?;
        Ok(EventDecompressor { context })
    }

    /// The event in `frame`.
    pub(crate) fn decompress(&mut self, frame: &[u8]) -> Result<Vec<u8>, String> {
        let fail = |e: std::io::Error| format!("cannot decompress a Jetstream event: {e}");
        match zstd::zstd_safe::get_frame_content_size(frame) {
            Ok(Some(size)) if size as usize <= MAX_EVENT_BYTES => {
                self.context.decompress(frame, size as usize).map_err(fail)
            }
            Ok(Some(size)) => Err(format!(
                "a Jetstream event of {size} bytes is over the {MAX_EVENT_BYTES}-byte limit"
            )),
            // The frame does not say how large the event is (a streaming encoder wrote it).
            Ok(None) => {
                let mut decoder = zstd::stream::read::Decoder::with_prepared_dictionary(
                    frame,
                    prepared_dictionary(),
                )
                .map_err(fail)?
                .single_frame();
                let mut event = Vec::new();
                (&mut decoder)
                    .take(MAX_EVENT_BYTES as u64 + 1)
                    .read_to_end(&mut event)
                    .map_err(fail)?;
                if event.len() > MAX_EVENT_BYTES {
                    return Err(format!(
                        "a Jetstream event is over the {MAX_EVENT_BYTES}-byte limit"
                    ));
                }
                Ok(event)
            }
            Err(_) => Err("a binary Jetstream message is not a zstd frame".into()),
        }
    }
}

/// Compresses `event` as Jetstream does (one frame, with the dictionary): what the replay
/// server sends with `compress=true`.
pub fn compress_event(event: &[u8]) -> Vec<u8> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<zstd::bulk::Compressor<'static>> =
            std::cell::RefCell::new(
                zstd::bulk::Compressor::with_dictionary(3, ZSTD_DICTIONARY)
                    .expect("the vendored dictionary loads"),
            );
    }
    COMPRESSOR.with(|c| {
        c.borrow_mut()
            .compress(event)
            .expect("compressing into a growing buffer cannot fail")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &[u8] = br#"{"did":"did:plc:wq4aajammjtxdomz3e23667t","time_us":1783175888085434,"kind":"commit","commit":{"rev":"3mptbypluud2a","operation":"create","collection":"app.bsky.feed.like","rkey":"3mptbyplj5d2a"}}"#;

    #[test]
    fn the_vendored_dictionary_is_jetstreams() {
        assert_eq!(ZSTD_DICTIONARY.len(), 112_640);
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_dict(ZSTD_DICTIONARY).map(|id| id.get()),
            Some(ZSTD_DICTIONARY_ID)
        );
    }

    #[test]
    fn frames_decompress_with_and_without_a_content_size() {
        let frame = compress_event(EVENT);
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&frame).map(|id| id.get()),
            Some(ZSTD_DICTIONARY_ID)
        );
        let mut d = EventDecompressor::new().unwrap();
        assert_eq!(d.decompress(&frame).unwrap(), EVENT);

        // A streaming encoder does not know the size in advance and leaves it out.
        let mut streamed = Vec::new();
        {
            let mut enc =
                zstd::stream::write::Encoder::with_dictionary(&mut streamed, 3, ZSTD_DICTIONARY)
                    .unwrap();
            std::io::Write::write_all(&mut enc, EVENT).unwrap();
            enc.finish().unwrap();
        }
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&streamed),
            Ok(None)
        ));
        assert_eq!(d.decompress(&streamed).unwrap(), EVENT);

        assert!(d.decompress(b"{\"not\":\"zstd\"}").is_err());
    }

    #[test]
    fn frames_need_the_dictionary() {
        let frame = compress_event(EVENT);
        let mut plain = zstd::bulk::Decompressor::new().unwrap();
        assert!(plain.decompress(&frame, 1 << 20).is_err());
    }
}
