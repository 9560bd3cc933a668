//! Call recordings to MP3, for Law Ruler.
//!
//! Law Ruler only plays call recordings reliably when they are `.mp3`, so every recording
//! casebridge sends there goes through [`to_mp3`]: the audio is decoded and encoded again for
//! real (renaming a WAV to `.mp3` does not make it play).
//!
//! - **Inputs**: WAV (PCM 8/16/24/32-bit integer, 32/64-bit float, A-law, µ-law), M4A/MP4 with
//!   AAC-LC, raw AAC (`.aac`, ADTS), Ogg Vorbis, FLAC, and MP3. The format is recognised from the
//!   bytes; the [`Hint`] (content type, file name) only improves error messages and lets an MP3
//!   with junk before its first frame be found. Not supported, with a clear
//!   [`AudioError::Unsupported`]: ADPCM/GSM WAV, AMR, Opus, WMA, AIFF, Matroska/WebM, MP2, ALAC.
//! - **Output**: constant bitrate MP3, **64 kbps mono** or **128 kbps stereo** (plenty for
//!   speech). Mono stays mono, stereo stays stereo, more than two channels are downmixed to
//!   stereo. 8–12 kHz stereo gets 64 kbps, the most LAME allows at those rates. The first frame
//!   is an Info (LAME) tag with the exact length, so players show the right duration.
//! - **Sample rates**: 8, 11.025, 12, 16, 22.05, 24, 32, 44.1 and 48 kHz are kept. Any other rate
//!   (96 kHz, 7.35 kHz, ...) is resampled by LAME's own resampler (a windowed-sinc filter, better
//!   than linear interpolation) to the nearest of those.
//! - **MP3 input is passed through byte for byte** ([`Mp3::transcoded`] is `false`): it is only
//!   read frame by frame to check it and to measure its length, never re-encoded.
//! - **Damage**: damaged packets are skipped, as symphonia recommends, and the rest converted; a
//!   WAV that was cut off converts the audio it holds. Only an input from which no audio at all
//!   decodes is [`AudioError::Corrupt`].
//! - **Limits**: recordings longer than [`MAX_DURATION`] (4 hours) are refused with
//!   [`AudioError::TooLong`], checked while decoding so memory stays bounded. The MP3 is encoded
//!   packet by packet, so memory is the input, its one working copy, and the MP3, never the
//!   decoded PCM (a 4-hour stereo recording is about 230 MB of MP3).
//!
//! # Calling from async code
//!
//! Everything here is synchronous and CPU-bound: in a release build, [`to_mp3`] takes about
//! 0.05 s per minute of 8 kHz mono and 0.6 s per minute of 44.1 kHz stereo on one core (a
//! 4-hour stereo recording: about 2.5 minutes). From the async server call it through
//! `tokio::task::spawn_blocking`, never directly on a runtime worker, and bound how many run at
//! once. [`probe`] decodes nothing and is cheap.
//!
//! # Licence of the MP3 encoder
//!
//! Encoding uses LAME 3.100 through the `mp3lame-encoder`/`mp3lame-sys` crates, which build it
//! from the C source they bundle (`./configure && make`, so building needs gcc and make) and
//! link it **statically** into the casebridge binary. LAME is licensed under the **LGPL-3.0**;
//! the rest of casebridge is Apache-2.0, and the MP3 files it produces are not covered by
//! either.
//!
//! The LGPL's obligations attach only to *distributing* the binary. Whoever gives a casebridge
//! binary (or a container image holding one) to someone else must tell them LAME is inside,
//! pass on the LGPL-3.0 and GPL-3.0 texts, offer LAME's source, and, because the linking is
//! static, make it possible to relink casebridge against a modified LAME (for example by
//! offering casebridge's source or object files). Running casebridge on our own servers and
//! serving its results over the network is not distribution (the LGPL, unlike the AGPL, has no
//! network clause) and triggers none of this.

mod decode;
mod encode;
mod error;
mod sniff;

use std::fmt;
use std::io::ErrorKind;
use std::time::Duration;

use bytes::Bytes;
use symphonia::core::audio::AudioBuffer;
use symphonia::core::errors::Error as SymError;

pub use error::AudioError;

/// Recordings longer than this are refused with [`AudioError::TooLong`].
pub const MAX_DURATION: Duration = Duration::from_secs(4 * 60 * 60);

/// What the uploader said about the file. Both fields are optional and never trusted over the
/// bytes themselves; they make error messages name the file and help find MP3 audio behind
/// leading junk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hint<'a> {
    /// The `Content-Type` the recording came with, e.g. `audio/wav`.
    pub content_type: Option<&'a str>,
    /// The recording's file name, e.g. `call-2024-05-01.wav`.
    pub file_name: Option<&'a str>,
}

impl Hint<'_> {
    /// The file name's extension, without the dot.
    fn extension(&self) -> Option<&str> {
        let name = self.file_name?.trim();
        let (stem, ext) = name.rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty()).then_some(ext)
    }
}

/// The recognised input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// RIFF WAVE with PCM, float, A-law or µ-law samples.
    Wav,
    /// MPEG-1/2/2.5 audio layer III.
    Mp3,
    /// AAC, in an MP4/M4A container or as a raw ADTS `.aac` stream.
    Mp4Aac,
    /// Vorbis in an Ogg container.
    OggVorbis,
    /// Native FLAC.
    Flac,
}

impl AudioFormat {
    /// A short name for messages and logs: `WAV`, `MP3`, `M4A/AAC`, `Ogg Vorbis`, `FLAC`.
    pub fn name(self) -> &'static str {
        match self {
            AudioFormat::Wav => "WAV",
            AudioFormat::Mp3 => "MP3",
            AudioFormat::Mp4Aac => "M4A/AAC",
            AudioFormat::OggVorbis => "Ogg Vorbis",
            AudioFormat::Flac => "FLAC",
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`probe`] found out about a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// The input format.
    pub format: AudioFormat,
    /// The length. From the file's header where it has one (for an MP3 without an Info/Xing
    /// header this is estimated from the bitrate); otherwise measured by counting packets.
    pub duration: Option<Duration>,
    /// The source sample rate in Hz, as the file states it.
    pub sample_rate: Option<u32>,
    /// The source channel count, as the file states it.
    pub channels: Option<u16>,
}

/// The MP3 to send to Law Ruler.
#[derive(Clone, PartialEq, Eq)]
pub struct Mp3 {
    /// The MP3 file (`audio/mpeg`).
    pub bytes: Vec<u8>,
    /// `false` when the input was already MP3 and `bytes` is the input, unchanged.
    pub transcoded: bool,
    /// The input format.
    pub source: AudioFormat,
    /// The length of the audio: what was decoded and encoded, or the MP3 input's own length.
    pub duration: Duration,
}

impl fmt::Debug for Mp3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mp3")
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("transcoded", &self.transcoded)
            .field("source", &self.source)
            .field("duration", &self.duration)
            .finish()
    }
}

/// Fast check used when a recording is uploaded: is this audio we can turn into MP3?
///
/// Recognises the format, opens the container, checks that its codec can be decoded and reads
/// the length, sample rate and channel count from the header. No audio is decoded; when the
/// header does not state the length (raw AAC, some Ogg files) the packets are counted, which
/// is still far cheaper than decoding.
///
/// Errors as [`to_mp3`] would for the same input, except that damage past the header is only
/// found by [`to_mp3`]. A recording declaring more than [`MAX_DURATION`] is
/// [`AudioError::TooLong`].
pub fn probe(bytes: &[u8], hint: Hint<'_>) -> Result<AudioInfo, AudioError> {
    probe_shared(&Bytes::copy_from_slice(bytes), hint)
}

/// [`probe`] on shared bytes (for example a memory-mapped upload), read in place: a large
/// recording is probed without a copy in memory (a WAV whose sizes need repair is the one
/// exception).
pub fn probe_shared(bytes: &Bytes, hint: Hint<'_>) -> Result<AudioInfo, AudioError> {
    let sniffed = sniff::sniff(bytes, &hint)?;
    let mut source = decode::open(bytes, sniffed)?;
    // Proves the codec is supported.
    let decoder = source.decoder()?;
    let sample_rate = source
        .params
        .sample_rate
        .or(decoder.codec_params().sample_rate);
    let channels = source.channels;
    drop(decoder);
    let duration = match source.declared_duration() {
        Some(d) => d,
        None => source.measure()?,
    };
    if duration > MAX_DURATION {
        return Err(AudioError::TooLong {
            length: Some(duration),
            limit: MAX_DURATION,
        });
    }
    if duration.is_zero() {
        // What to_mp3 would find too; say so at upload time.
        return Err(AudioError::Corrupt(format!(
            "the {} file contains no audio",
            source.label
        )));
    }
    Ok(AudioInfo {
        format: source.format,
        duration: Some(duration),
        sample_rate,
        channels,
    })
}

/// Decodes the whole input and encodes MP3 (mono stays mono, stereo stays stereo, more than
/// two channels are downmixed to stereo). CBR, 64 kbps for mono and 128 kbps for stereo
/// (speech recordings). MP3 input is passed through untouched.
///
/// Sample rates MP3 cannot carry are resampled to the nearest one it can (see the crate docs).
/// Damaged packets are skipped; if no audio at all decodes the result is
/// [`AudioError::Corrupt`]. A truncated WAV converts the audio it holds. Recordings longer than
/// [`MAX_DURATION`] are refused with [`AudioError::TooLong`] as soon as that is known (from the
/// header, or while decoding), so memory and CPU stay bounded.
///
/// CPU-bound and synchronous: call it from `spawn_blocking`.
pub fn to_mp3(bytes: &[u8], hint: Hint<'_>) -> Result<Mp3, AudioError> {
    let sniffed = sniff::sniff(bytes, &hint)?;
    let mut source = decode::open(&Bytes::copy_from_slice(bytes), sniffed)?;

    if source.format == AudioFormat::Mp3 {
        // Reading every frame checks that this is a real MP3 stream and gives its exact length.
        let duration = source.measure()?;
        if duration > MAX_DURATION {
            return Err(AudioError::TooLong {
                length: Some(duration),
                limit: MAX_DURATION,
            });
        }
        return Ok(Mp3 {
            bytes: bytes.to_vec(),
            transcoded: false,
            source: AudioFormat::Mp3,
            duration,
        });
    }

    if let Some(length) = source.declared_duration().filter(|d| *d > MAX_DURATION) {
        return Err(AudioError::TooLong {
            length: Some(length),
            limit: MAX_DURATION,
        });
    }
    transcode(source, MAX_DURATION)
}

/// The decode → encode loop, one packet at a time. `limit` is checked on the decoded audio.
fn transcode(mut source: decode::Source, limit: Duration) -> Result<Mp3, AudioError> {
    let declared = source.declared_duration();
    let mut decoder = source.decoder()?;
    let (format, label) = (source.format, source.label);

    let mut writer: Option<(encode::Mp3Writer, u32)> = None;
    let mut samples: Option<AudioBuffer<f32>> = None;
    let mut frames: u64 = 0;
    let mut first_error: Option<String> = None;
    let mut first_unsupported: Option<&'static str> = None;

    loop {
        let packet = match source.reader.next_packet() {
            Ok(packet) => packet,
            Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            // A chained stream (a second Ogg stream after the first): the first is the call.
            Err(SymError::ResetRequired) => break,
            // The container itself is damaged from here on: keep what was decoded so far.
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
                break;
            }
        };
        if packet.track_id() != source.track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A damaged packet: skip it and go on, as symphonia recommends.
            Err(SymError::DecodeError(e)) => {
                first_error.get_or_insert_with(|| e.to_owned());
                continue;
            }
            Err(SymError::IoError(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
            Err(SymError::ResetRequired) => break,
            // Garbage in a damaged packet often parses as a feature the decoder lacks (an AAC
            // program config, say): skip it too. Only if nothing decodes is it reported.
            Err(SymError::Unsupported(e)) => {
                first_unsupported.get_or_insert(e);
                continue;
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        if decoded.frames() == 0 {
            continue;
        }
        let spec = *decoded.spec();
        let (mp3, rate) = match &mut writer {
            Some((mp3, rate)) => {
                if spec.rate != *rate {
                    return Err(AudioError::Unsupported(format!(
                        "the sample rate of the {label} file changes in the middle of the \
                         recording ({} Hz to {} Hz)",
                        rate, spec.rate
                    )));
                }
                (mp3, *rate)
            }
            None => {
                if spec.rate == 0 {
                    return Err(AudioError::Corrupt(format!(
                        "the {label} file states a sample rate of 0 Hz"
                    )));
                }
                let mp3 = encode::Mp3Writer::new(spec.rate, spec.channels.count(), declared)?;
                let (mp3, rate) = writer.insert((mp3, spec.rate));
                (mp3, *rate)
            }
        };

        frames += decoded.frames() as u64;
        if decode::frames_to_duration(frames, rate) > limit {
            return Err(AudioError::TooLong {
                length: None,
                limit,
            });
        }

        let buf = match &mut samples {
            Some(buf) if *buf.spec() == spec && buf.capacity() >= decoded.capacity() => buf,
            slot => slot.insert(decoded.make_equivalent::<f32>()),
        };
        decoded.convert(buf);
        mp3.write(buf)?;
    }

    let Some((mp3, rate)) = writer else {
        if let Some(e) = first_unsupported {
            return Err(AudioError::Unsupported(format!(
                "the {label} file's {} audio uses a feature casebridge cannot decode ({e})",
                decode::codec_name(source.params.codec)
            )));
        }
        return Err(AudioError::Corrupt(match first_error {
            Some(e) => format!("no audio could be decoded from the {label} file ({e})"),
            None => format!("the {label} file contains no audio"),
        }));
    };
    Ok(Mp3 {
        bytes: mp3.finish()?,
        transcoded: true,
        source: format,
        duration: decode::frames_to_duration(frames, rate),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit mono WAV of `seconds` of a quiet 440 Hz tone.
    fn wav(rate: u32, seconds: u32) -> Vec<u8> {
        let frames = rate * seconds;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + frames * 2).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(frames * 2).to_le_bytes());
        for i in 0..frames {
            let t = f64::from(i) / f64::from(rate);
            let s = (t * 440.0 * std::f64::consts::TAU).sin() * 8000.0;
            out.extend_from_slice(&(s as i16).to_le_bytes());
        }
        out
    }

    #[test]
    fn the_length_limit_is_enforced_while_decoding() {
        let bytes = wav(8_000, 3);
        let sniffed = sniff::sniff(&bytes, &Hint::default()).unwrap();
        let source = decode::open(&Bytes::from(bytes.clone()), sniffed).unwrap();
        let err = transcode(source, Duration::from_secs(2)).unwrap_err();
        assert_eq!(
            err,
            AudioError::TooLong {
                length: None,
                limit: Duration::from_secs(2)
            }
        );
        assert_eq!(
            err.to_string(),
            "recording too long: it is longer than 0:00:02 (the limit is 0:00:02)"
        );

        let sniffed = sniff::sniff(&bytes, &Hint::default()).unwrap();
        let source = decode::open(&Bytes::from(bytes.clone()), sniffed).unwrap();
        assert!(transcode(source, Duration::from_secs(3)).is_ok());
    }

    #[test]
    fn hint_extension() {
        let hint = |name| Hint {
            content_type: None,
            file_name: Some(name),
        };
        assert_eq!(hint("call.MP3").extension(), Some("MP3"));
        assert_eq!(hint("a.b.wav").extension(), Some("wav"));
        assert_eq!(hint(".mp3").extension(), None);
        assert_eq!(hint("noext").extension(), None);
    }
}
