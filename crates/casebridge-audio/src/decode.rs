//! Opening the input with the right symphonia reader and finding the track to convert.

use std::io::{Cursor, ErrorKind};
use std::time::Duration;

use bytes::Bytes;

use symphonia::core::codecs::{self, CodecParameters, CodecType, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::default::formats::{
    AdtsReader, FlacReader, IsoMp4Reader, MpaReader, OggReader, WavReader,
};

use crate::sniff::{self, Container, Sniffed};
use crate::{AudioError, AudioFormat};

/// An opened input: the container reader and the one audio track we convert.
pub(crate) struct Source {
    pub format: AudioFormat,
    /// The container's name for messages: `WAV`, `MP4/M4A`, `Ogg`, `FLAC`, `MP3`, `AAC (ADTS)`.
    pub label: &'static str,
    pub reader: Box<dyn FormatReader>,
    pub track_id: u32,
    pub params: CodecParameters,
    /// The channel count, from the track or, for AAC in MP4 (where symphonia leaves it out),
    /// from the AudioSpecificConfig.
    pub channels: Option<u16>,
}

impl Container {
    fn format(self) -> AudioFormat {
        match self {
            Container::Wav => AudioFormat::Wav,
            Container::Mp4 | Container::Adts => AudioFormat::Mp4Aac,
            Container::Ogg => AudioFormat::OggVorbis,
            Container::Flac => AudioFormat::Flac,
            Container::Mp3 => AudioFormat::Mp3,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Container::Wav => "WAV",
            Container::Mp4 => "MP4/M4A",
            Container::Ogg => "Ogg",
            Container::Flac => "FLAC",
            Container::Mp3 => "MP3",
            Container::Adts => "AAC (ADTS)",
        }
    }
}

pub(crate) fn open(bytes: &Bytes, sniffed: Sniffed) -> Result<Source, AudioError> {
    let format = sniffed.container.format();
    let label = sniffed.container.label();
    // Symphonia needs an owned ('static) source: a shared view of the input (no copy), or a
    // private copy when a WAV's sizes must be repaired first.
    let mut data = bytes.slice(sniffed.start..);
    if sniffed.container == Container::Wav {
        let fixes = sniff::wav_size_fixes(&data);
        if !fixes.is_empty() {
            let mut copy = data.to_vec();
            sniff::repair_wav_sizes(&mut copy);
            data = Bytes::from(copy);
        }
    }
    let wav_tag = (sniffed.container == Container::Wav)
        .then(|| sniff::wav_format_tag(&data))
        .flatten();
    let stream = MediaSourceStream::new(Box::new(Cursor::new(data)), Default::default());
    // Gapless: MP3 encoder delay and padding (from a LAME tag) are trimmed, so durations and
    // the decoded audio are the real recording.
    let options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };

    fn read<R: FormatReader + 'static>(
        stream: MediaSourceStream,
        options: &FormatOptions,
    ) -> Result<Box<dyn FormatReader>, SymError> {
        Ok(Box::new(R::try_new(stream, options)?))
    }
    let opened = match sniffed.container {
        Container::Wav => read::<WavReader>(stream, &options),
        Container::Mp4 => read::<IsoMp4Reader>(stream, &options),
        Container::Ogg => read::<OggReader>(stream, &options),
        Container::Flac => read::<FlacReader>(stream, &options),
        Container::Mp3 => read::<MpaReader>(stream, &options),
        Container::Adts => read::<AdtsReader>(stream, &options),
    };
    let reader = opened.map_err(|e| match (e, wav_tag) {
        (SymError::Unsupported(_), Some(tag)) => AudioError::Unsupported(format!(
            "the WAV file holds {}; only plain PCM, A-law and µ-law WAV can be converted",
            match wav_codec_name(tag) {
                Some(name) => format!("{name} audio"),
                None => format!("audio in an unsupported encoding (WAVE format tag 0x{tag:04x})"),
            }
        )),
        (e, _) => open_error(label, e),
    })?;

    let audio: Vec<_> = reader
        .tracks()
        .iter()
        .filter(|t| t.codec_params.codec != codecs::CODEC_TYPE_NULL)
        .collect();
    let Some(first) = audio.first() else {
        // MP4 tracks in codecs symphonia does not know show up without a codec: name the
        // common phone-recorder case (AMR in a .3gp/.m4a) rather than claim there is no audio.
        let amr = [b"samr", b"sawb"]
            .iter()
            .any(|atom| bytes.windows(4).any(|w| w == &atom[..]));
        return Err(if sniffed.container == Container::Mp4 && amr {
            AudioError::Unsupported(format!(
                "the {label} file holds AMR audio (usual for .3gp phone recordings), which \
                 casebridge cannot convert"
            ))
        } else {
            AudioError::NotAudio(format!("the {label} file contains no audio track"))
        });
    };
    let Some(track) = audio.iter().find(|t| accepts(format, t.codec_params.codec)) else {
        return Err(AudioError::Unsupported(format!(
            "the {label} file holds {} audio, which casebridge cannot convert",
            codec_name(first.codec_params.codec)
        )));
    };
    let (track_id, params) = (track.id, track.codec_params.clone());
    let channels = match params.channels {
        Some(c) => Some(u16::try_from(c.count()).unwrap_or(u16::MAX)),
        None if params.codec == codecs::CODEC_TYPE_AAC => {
            params.extra_data.as_deref().and_then(aac_channels)
        }
        None => None,
    };
    Ok(Source {
        format,
        label,
        reader,
        track_id,
        params,
        channels,
    })
}

/// The channel count from an AAC AudioSpecificConfig (ISO 14496-3 1.6.2.1): 5 bits object
/// type (6 more if it is 31), 4 bits rate index (24 more bits of rate if it is 15), 4 bits
/// channel configuration.
fn aac_channels(config: &[u8]) -> Option<u16> {
    let bits = config
        .iter()
        .take(8)
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        << (8 * (8 - config.len().min(8)));
    let mut pos = 5;
    if bits >> 59 == 31 {
        pos += 6;
    }
    let rate_index = (bits >> (60 - pos)) & 0x0f;
    pos += 4;
    if rate_index == 15 {
        pos += 24;
    }
    if config.len() * 8 < pos + 4 {
        return None;
    }
    match (bits >> (60 - pos)) & 0x0f {
        c @ 1..=6 => Some(c as u16),
        7 => Some(8),
        _ => None, // 0: defined in the stream itself
    }
}

impl Source {
    /// A decoder for the track. Cheap: nothing is decoded yet.
    pub fn decoder(&self) -> Result<Box<dyn Decoder>, AudioError> {
        symphonia::default::get_codecs()
            .make(&self.params, &DecoderOptions::default())
            .map_err(|e| match e {
                SymError::Unsupported(msg) => AudioError::Unsupported(format!(
                    "the {} file's {} audio uses a feature casebridge cannot decode ({msg})",
                    self.label,
                    codec_name(self.params.codec)
                )),
                other => AudioError::Corrupt(format!(
                    "the {} file's audio settings are damaged ({other})",
                    self.label
                )),
            })
    }

    /// The length the container states, if it states one.
    pub fn declared_duration(&self) -> Option<Duration> {
        let frames = self.params.n_frames?;
        if let Some(tb) = self.params.time_base {
            let t = tb.calc_time(frames);
            return Some(Duration::from_secs(t.seconds) + Duration::from_secs_f64(t.frac));
        }
        Some(frames_to_duration(frames, self.params.sample_rate?))
    }

    /// The exact length, found by reading every packet of the track without decoding it (cheap:
    /// no audio is decoded, packets are only counted). `Corrupt` when not one packet can be read.
    pub fn measure(&mut self) -> Result<Duration, AudioError> {
        let mut units = 0u64;
        let mut packets = 0u64;
        loop {
            match self.reader.next_packet() {
                Ok(p) if p.track_id() == self.track_id => {
                    units += p.dur;
                    packets += 1;
                }
                Ok(_) => {}
                Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
                Err(SymError::ResetRequired) => break,
                Err(e) if packets == 0 => {
                    return Err(AudioError::Corrupt(format!(
                        "no audio could be read from the {} file ({e})",
                        self.label
                    )))
                }
                // Damage after some audio: what came before still counts.
                Err(_) => break,
            }
        }
        if packets == 0 {
            return Err(AudioError::Corrupt(format!(
                "the {} file contains no audio",
                self.label
            )));
        }
        if let Some(tb) = self.params.time_base {
            let t = tb.calc_time(units);
            return Ok(Duration::from_secs(t.seconds) + Duration::from_secs_f64(t.frac));
        }
        match self.params.sample_rate {
            Some(rate) if rate > 0 => Ok(frames_to_duration(units, rate)),
            _ => Err(AudioError::Corrupt(format!(
                "the {} file does not state its sample rate",
                self.label
            ))),
        }
    }
}

pub(crate) fn frames_to_duration(frames: u64, rate: u32) -> Duration {
    let rate = u64::from(rate.max(1));
    Duration::from_secs(frames / rate)
        + Duration::from_nanos((frames % rate) * 1_000_000_000 / rate)
}

/// The codec each container is expected to carry. WAV takes whatever PCM variant symphonia
/// decodes (integer, float, A-law, µ-law); the others take exactly one codec.
fn accepts(format: AudioFormat, codec: CodecType) -> bool {
    match format {
        AudioFormat::Wav => symphonia::default::get_codecs().get_codec(codec).is_some(),
        AudioFormat::Mp3 => codec == codecs::CODEC_TYPE_MP3,
        AudioFormat::Mp4Aac => codec == codecs::CODEC_TYPE_AAC,
        AudioFormat::OggVorbis => codec == codecs::CODEC_TYPE_VORBIS,
        AudioFormat::Flac => codec == codecs::CODEC_TYPE_FLAC,
    }
}

/// A name an admin may recognise, for codecs we find but do not convert.
pub(crate) fn codec_name(codec: CodecType) -> &'static str {
    use codecs::*;
    match codec {
        CODEC_TYPE_OPUS => "Opus",
        CODEC_TYPE_SPEEX => "Speex",
        CODEC_TYPE_ADPCM_IMA_WAV | CODEC_TYPE_ADPCM_IMA_QT => "IMA ADPCM",
        CODEC_TYPE_ADPCM_MS => "Microsoft ADPCM",
        CODEC_TYPE_ADPCM_G722 => "G.722",
        CODEC_TYPE_ADPCM_G726 | CODEC_TYPE_ADPCM_G726LE => "G.726",
        CODEC_TYPE_ALAC => "Apple Lossless (ALAC)",
        CODEC_TYPE_MP1 => "MPEG layer I",
        CODEC_TYPE_MP2 => "MPEG layer II (MP2)",
        CODEC_TYPE_MP3 => "MP3",
        CODEC_TYPE_AAC => "AAC",
        CODEC_TYPE_VORBIS => "Vorbis",
        CODEC_TYPE_FLAC => "FLAC",
        CODEC_TYPE_EAC3 => "Dolby Digital Plus (E-AC-3)",
        CODEC_TYPE_WMA => "Windows Media Audio",
        _ => match symphonia::default::get_codecs().get_codec(codec) {
            Some(descriptor) => descriptor.long_name,
            None => "an unrecognised kind of",
        },
    }
}

/// WAVE format tags seen in telephony and dictation recordings.
fn wav_codec_name(tag: u16) -> Option<&'static str> {
    Some(match tag {
        0x0002 => "Microsoft ADPCM",
        0x0011 => "IMA ADPCM",
        0x0022 => "DSP Group TrueSpeech",
        0x0031 => "GSM 6.10",
        0x0040 | 0x0064 => "G.721/G.726 ADPCM",
        0x0045 => "G.726 ADPCM",
        0x0050 => "MPEG layer I/II",
        0x0055 => "MP3",
        0x0065 => "G.722",
        0x0092 => "Dolby AC-3",
        0x0161..=0x0163 => "Windows Media Audio",
        _ => return None,
    })
}

fn open_error(label: &str, e: SymError) -> AudioError {
    match e {
        SymError::Unsupported(msg) => AudioError::Unsupported(format!(
            "the {label} file uses a feature casebridge cannot read ({msg})"
        )),
        SymError::LimitError(msg) => AudioError::Unsupported(format!(
            "the {label} file exceeds a safety limit of the reader ({msg})"
        )),
        SymError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => AudioError::Corrupt(
            format!("the {label} file ends inside its header (it was cut off)"),
        ),
        other => AudioError::Corrupt(format!("the {label} file's header is damaged ({other})")),
    }
}

#[cfg(test)]
mod tests {
    use super::aac_channels;

    #[test]
    fn aac_channel_configuration() {
        // AAC-LC (2), 44.1 kHz (4), stereo (2): 00010 0100 0010 000
        assert_eq!(aac_channels(&[0x12, 0x10]), Some(2));
        // AAC-LC, 8 kHz (11), mono: 00010 1011 0001 000
        assert_eq!(aac_channels(&[0x15, 0x88]), Some(1));
        // Explicit 24-bit rate (index 15), mono.
        assert_eq!(aac_channels(&[0x17, 0x80, 0x5d, 0xc0, 0x08]), Some(1));
        assert_eq!(aac_channels(&[0x12]), None);
    }
}
