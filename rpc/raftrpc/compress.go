// Copyright 2026 The Flotilla Authors. All rights reserved.

package raftrpc

import (
	"errors"
	"fmt"
	"github.com/flotilladb/flotilla/rpc"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/klauspost/compress/s2"
)

// errBadCompression is returned (wrapped) for a frame whose payload does not
// decompress, or names an unknown compression.
var errBadCompression = errors.New("raftrpc: bad compressed payload")

// maxDecodedSize bounds what one frame may decompress to. A sender never
// compresses a payload larger than a gRPC message may be (it would not fit
// uncompressed either), so a larger claim is garbage or an attack on the
// receiver's memory.
const maxDecodedSize = rpc.MaxMessageSize

// compressPayload returns data s2-compressed if it is at least threshold
// bytes long (threshold > 0) and compressing makes it smaller; otherwise
// data itself, uncompressed. The result never aliases data when compressed.
func compressPayload(data []byte, threshold int) ([]byte, flotillapb.Compression) {
	if threshold <= 0 || len(data) < threshold || len(data) > maxDecodedSize {
		return data, flotillapb.Compression_NONE
	}
	enc := s2.Encode(nil, data)
	if len(enc) >= len(data) {
		return data, flotillapb.Compression_NONE
	}
	return enc, flotillapb.Compression_S2
}

// decompressPayload undoes compressPayload. It returns an error wrapping
// errBadCompression, never panics, for garbage input or an unknown
// compression. An uncompressed payload is returned as is.
func decompressPayload(data []byte, c flotillapb.Compression) ([]byte, error) {
	switch c {
	case flotillapb.Compression_NONE:
		return data, nil
	case flotillapb.Compression_S2:
		n, err := s2.DecodedLen(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadCompression, err)
		}
		if n > maxDecodedSize {
			return nil, fmt.Errorf("%w: decodes to %d bytes, more than %d", errBadCompression, n, maxDecodedSize)
		}
		out, err := s2.Decode(nil, data)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadCompression, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown compression %d", errBadCompression, int32(c))
	}
}
