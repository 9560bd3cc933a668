use std::time::Duration;

/// Why a recording could not be probed or turned into MP3.
///
/// Every message is a complete sentence fragment an admin can act on: it names the format that was
/// found (or that nothing was), and never contains the audio itself. Safe to log and to show in the
/// admin UI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// The bytes are not an audio recording at all: empty, a document, an image, an HTML error page
    /// that was downloaded instead of the recording, or data in no format we recognise.
    #[error("not an audio recording: {0}")]
    NotAudio(String),
    /// Audio, but in a container, codec or variant this crate does not convert (for example AMR,
    /// Opus, WMA, ADPCM WAV or AIFF).
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    /// A supported format whose data is damaged so badly that no audio at all could be decoded.
    /// (Isolated damaged packets are skipped, not reported.)
    #[error("damaged audio file: {0}")]
    Corrupt(String),
    /// The recording is longer than [`MAX_DURATION`](crate::MAX_DURATION).
    ///
    /// `length` is the recording's length when the file declares it; when the limit is only
    /// noticed while decoding it is `None` (the recording is at least `limit` long).
    #[error("recording too long: {} (the limit is {})", describe_length(.length, .limit), hms(*.limit))]
    TooLong {
        /// The declared length, if the file states one.
        length: Option<Duration>,
        /// The limit that was exceeded.
        limit: Duration,
    },
    /// LAME refused the parameters or failed while encoding. Not the input's fault; worth a bug
    /// report with the input's format, sample rate and channel count.
    #[error("MP3 encoding failed: {0}")]
    Encode(String),
}

fn describe_length(length: &Option<Duration>, limit: &Duration) -> String {
    match length {
        Some(length) => format!("it is {} long", hms(*length)),
        None => format!("it is longer than {}", hms(*limit)),
    }
}

/// `h:mm:ss`, the way a person reads a recording's length.
pub(crate) fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}
