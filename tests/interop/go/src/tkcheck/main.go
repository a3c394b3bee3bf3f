// tkcheck is trustkit's reference checker: a tiny line-oriented JSON server that
// drives the Go reference libraries (github.com/nats-io/jwt/v2 and
// github.com/nats-io/nkeys, as packaged by Debian) so the Python test-suite can
// compare trustkit's output with Go's byte for byte.
//
// Build in GOPATH mode (no modules, no network):
//
//	GO111MODULE=off GOPATH=<repo>/tests/interop/go:/usr/share/gocode go build tkcheck
//
// Protocol: one JSON object per line on stdin, one JSON object per line on
// stdout (flushed after every line). Failures are {"error": "<Go error>"}; a bad
// request never ends the process. See tests/interop/gocheck.py for the ops.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

type request struct {
	Op      string          `json:"op"`
	Kind    string          `json:"kind"`
	Seed    string          `json:"seed"`
	Claims  json.RawMessage `json:"claims"`
	Strict  bool            `json:"strict"`
	Token   string          `json:"token"`
	SignB64 *string         `json:"sign_b64"`
	Public  string          `json:"public"`
	DataB64 string          `json:"data_b64"`
	SigB64  string          `json:"sig_b64"`
	Key     string          `json:"key"`
	JWT     string          `json:"jwt"`
	Data    string          `json:"data"`
}

type response map[string]interface{}

func errResp(err error) response {
	return response{"error": err.Error()}
}

// newClaims returns a zero-value claims struct of the given kind (deliberately
// not jwt.New*Claims, whose -1 defaults would change the encoded payload).
func newClaims(kind string) (jwt.Claims, error) {
	switch kind {
	case "operator":
		return &jwt.OperatorClaims{}, nil
	case "account":
		return &jwt.AccountClaims{}, nil
	case "user":
		return &jwt.UserClaims{}, nil
	case "activation":
		return &jwt.ActivationClaims{}, nil
	case "generic":
		return &jwt.GenericClaims{}, nil
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

func unmarshalClaims(data []byte, target interface{}, strict bool) error {
	if !strict {
		return json.Unmarshal(data, target)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(target); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after claims object")
	}
	return nil
}

func opEncode(req *request) response {
	if len(req.Claims) == 0 || string(req.Claims) == "null" {
		return errResp(errors.New("claims is required"))
	}
	claims, err := newClaims(req.Kind)
	if err != nil {
		return errResp(err)
	}
	if err := unmarshalClaims(req.Claims, claims, req.Strict); err != nil {
		return errResp(err)
	}
	kp, err := nkeys.FromSeed([]byte(req.Seed))
	if err != nil {
		return errResp(err)
	}
	token, err := claims.Encode(kp)
	if err != nil {
		return errResp(err)
	}
	return response{"token": token}
}

func decodeKind(kind, token string) (jwt.Claims, error) {
	switch kind {
	case "operator":
		return jwt.DecodeOperatorClaims(token)
	case "account":
		return jwt.DecodeAccountClaims(token)
	case "user":
		return jwt.DecodeUserClaims(token)
	case "activation":
		return jwt.DecodeActivationClaims(token)
	case "generic":
		return jwt.DecodeGeneric(token)
	case "any", "":
		return jwt.Decode(token)
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

func opDecode(req *request) response {
	claims, err := decodeKind(req.Kind, req.Token)
	if err != nil {
		return errResp(err)
	}
	vr := jwt.CreateValidationResults()
	claims.Validate(vr)
	errs := []string{}
	warnings := []string{}
	timeChecks := []string{}
	for _, issue := range vr.Issues {
		if issue.Blocking {
			errs = append(errs, issue.Description)
		} else {
			warnings = append(warnings, issue.Description)
		}
		if issue.TimeCheck {
			timeChecks = append(timeChecks, issue.Description)
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return errResp(err)
	}
	return response{
		"claims":       json.RawMessage(payload),
		"payload_json": string(payload),
		"errors":       errs,
		"warnings":     warnings,
		"time_checks":  timeChecks,
		"kind":         string(claims.ClaimType()),
	}
}

func opNkey(req *request) response {
	kp, err := nkeys.FromSeed([]byte(req.Seed))
	if err != nil {
		return errResp(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return errResp(err)
	}
	priv, err := kp.PrivateKey()
	if err != nil {
		return errResp(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return errResp(err)
	}
	resp := response{"public": pub, "private": string(priv), "seed": string(seed)}
	if req.SignB64 != nil {
		data, err := base64.StdEncoding.DecodeString(*req.SignB64)
		if err != nil {
			return errResp(err)
		}
		sig, err := kp.Sign(data)
		if err != nil {
			return errResp(err)
		}
		resp["sig_b64"] = base64.StdEncoding.EncodeToString(sig)
	}
	return resp
}

func opVerify(req *request) response {
	kp, err := nkeys.FromPublicKey(req.Public)
	if err != nil {
		return errResp(err)
	}
	data, err := base64.StdEncoding.DecodeString(req.DataB64)
	if err != nil {
		return errResp(err)
	}
	sig, err := base64.StdEncoding.DecodeString(req.SigB64)
	if err != nil {
		return errResp(err)
	}
	return response{"ok": kp.Verify(data, sig) == nil}
}

func opNkeyCheck(req *request) response {
	seedErr := ""
	seedType := ""
	if pre, _, err := nkeys.DecodeSeed([]byte(req.Key)); err != nil {
		seedErr = err.Error()
	} else {
		seedType = pre.String()
	}
	return response{
		"valid_public":      nkeys.IsValidPublicKey(req.Key),
		"valid_encoding":    nkeys.IsValidEncoding([]byte(req.Key)),
		"prefix":            nkeys.Prefix(req.Key).String(),
		"decode_seed_error": seedErr,
		"seed_type":         seedType,
	}
}

func opCreds(req *request) response {
	creds, err := jwt.FormatUserConfig(req.JWT, []byte(req.Seed))
	if err != nil {
		return errResp(err)
	}
	return response{"creds": string(creds)}
}

func opParseCreds(req *request) response {
	data := []byte(req.Data)
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return errResp(err)
	}
	resp := response{"jwt": token, "seed": ""}
	kp, err := jwt.ParseDecoratedNKey(data)
	if err != nil {
		resp["seed_error"] = err.Error()
		return resp
	}
	seed, err := kp.Seed()
	if err != nil {
		resp["seed_error"] = err.Error()
		return resp
	}
	resp["seed"] = string(seed)
	return resp
}

func opDecorate(req *request) response {
	text, err := jwt.DecorateJWT(req.JWT)
	if err != nil {
		return errResp(err)
	}
	return response{"text": string(text)}
}

func opVersion(_ *request) response {
	return response{"jwt": jwt.Version, "nkeys": nkeys.Version}
}

var ops = map[string]func(*request) response{
	"encode":      opEncode,
	"decode":      opDecode,
	"nkey":        opNkey,
	"verify":      opVerify,
	"nkey_check":  opNkeyCheck,
	"creds":       opCreds,
	"parse_creds": opParseCreds,
	"decorate":    opDecorate,
	"version":     opVersion,
}

// handle never panics: the reference libraries can panic on hostile input
// (e.g. ed25519.Verify with a public key that is not 32 bytes), and such a
// panic is reported as an error response instead of killing the process.
func handle(line []byte) (resp response) {
	defer func() {
		if r := recover(); r != nil {
			resp = response{"error": fmt.Sprintf("panic: %v", r), "panic": true}
		}
	}()
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return errResp(fmt.Errorf("bad request: %w", err))
	}
	fn, ok := ops[req.Op]
	if !ok {
		return errResp(fmt.Errorf("unknown op %q", req.Op))
	}
	return fn(&req)
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<16)
	out := bufio.NewWriter(os.Stdout)
	for {
		line, err := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			resp := handle(line)
			b, merr := json.Marshal(resp)
			if merr != nil {
				b, _ = json.Marshal(errResp(merr))
			}
			out.Write(b)
			out.WriteByte('\n')
			if ferr := out.Flush(); ferr != nil {
				os.Exit(1)
			}
		}
		if err != nil {
			if err != io.EOF {
				fmt.Fprintln(os.Stderr, "tkcheck: read error:", err)
				os.Exit(1)
			}
			return
		}
	}
}
