//! A repository's archive at a ref (`tarball/{ref}`, `zipball/{ref}`: a repository's
//! `archive_url` and a tag's `tarball_url` and `zipball_url`). GitHub redirects to
//! codeload; the sandbox answers with the archive itself: a gzipped tar or a zip of the
//! ref's files under `{owner}-{repo}-{short sha}/`, as GitHub names them. Its files are
//! stored, not compressed (deflate's stored blocks; zip's method 0), which every reader
//! accepts.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::errors::{GitHubResult, error};
use super::{API, BLOB, DEFAULT_BRANCH, GitHub};

const DOCS: &str = "https://docs.github.com/rest/repos/contents#download-a-repository-archive-tar";

impl GitHub {
    pub(super) async fn archive(
        &self,
        repo_key: &str,
        repo: &Value,
        format: &str,
        reference: &str,
    ) -> GitHubResult {
        let reference = if reference.is_empty() {
            DEFAULT_BRANCH
        } else {
            reference
        };
        let missing = || error(StatusCode::NOT_FOUND, "Not Found", DOCS);
        let sha = self
            .resolve(repo_key, reference)
            .await?
            .ok_or_else(missing)?;
        let commit = self.commit(repo_key, &sha).await?.ok_or_else(missing)?;
        let root = format!(
            "{}-{}-{}",
            self.org,
            repo["name"].as_str().unwrap_or_default(),
            &sha[..7]
        );
        let mut files = Vec::new();
        for (path, blob_sha) in commit["tree"].as_object().into_iter().flatten() {
            let key = format!("{repo_key}/{}", blob_sha.as_str().unwrap_or_default());
            let blob = self.docs.get(API, BLOB, &key).await?.unwrap_or_default();
            let bytes = B64
                .decode(blob["content"].as_str().unwrap_or_default())
                .unwrap_or_default();
            files.push((format!("{root}/{path}"), bytes));
        }
        let (body, kind, extension) = if format == "zipball" {
            (zip(&files), "application/zip", "zip")
        } else {
            (gzip(&tar(&files)), "application/x-gzip", "tar.gz")
        };
        let mut response = (StatusCode::OK, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={root}.{extension}")) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(response)
    }
}

/// CRC-32 (IEEE), as gzip and zip check their contents.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A ustar archive of regular files.
fn tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, bytes) in files {
        let mut header = [0u8; 512];
        let name = path.as_bytes();
        // Long paths go in the prefix field (155 bytes) and the name field (100).
        let (prefix, name) = match name.len() {
            0..=100 => (&b""[..], name),
            _ => {
                let split = path[..path.len().min(155)].rfind('/').unwrap_or(0);
                (&name[..split], &name[split + 1..])
            }
        };
        header[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        header[100..108].copy_from_slice(b"0000644\0");
        header[108..116].copy_from_slice(b"0000000\0");
        header[116..124].copy_from_slice(b"0000000\0");
        header[124..136].copy_from_slice(format!("{:011o}\0", bytes.len()).as_bytes());
        header[136..148].copy_from_slice(b"00000000000\0");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[345..345 + prefix.len().min(155)].copy_from_slice(&prefix[..prefix.len().min(155)]);
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(bytes);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// A gzip stream of `data` in deflate's stored blocks.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let len = chunk.len() as u16;
        out.push(u8::from(chunks.peek().is_none()));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// A zip archive of `files`, stored.
fn zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let (mut out, mut directory) = (Vec::new(), Vec::new());
    for (path, bytes) in files {
        let offset = out.len() as u32;
        let (crc, size, name) = (crc32(bytes), bytes.len() as u32, path.as_bytes());
        // version, flags (UTF-8 names), method 0, time, date, crc, sizes, name length.
        let common = |out: &mut Vec<u8>| {
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&0x0800u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&0x21u16.to_le_bytes());
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name);
        out.extend_from_slice(bytes);
        directory.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        directory.extend_from_slice(&20u16.to_le_bytes());
        common(&mut directory);
        // comment length, disk, internal and external attributes, offset.
        directory.extend_from_slice(&[0; 6]);
        directory.extend_from_slice(&0o100644u32.wrapping_shl(16).to_le_bytes());
        directory.extend_from_slice(&offset.to_le_bytes());
        directory.extend_from_slice(name);
    }
    let (at, len, count) = (out.len() as u32, directory.len() as u32, files.len() as u16);
    out.extend_from_slice(&directory);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}
