package router

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
)

// Codec turns typed request and reply values into payload bytes and back.
// On the wire a payload stays plain bytes, so a client in any language calls
// a typed method by sending what the codec would (JSON, protobuf or text).
// Codecs are safe for concurrent use.
type Codec interface {
	// Name says what the codec writes, for error messages ("json").
	Name() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a non-nil pointer.
	Unmarshal(data []byte, v any) error
}

// The codecs troupe provides.
var (
	// JSON is encoding/json. An empty payload decodes as the zero value, so
	// a method whose request is a struct of optional fields can be called
	// with none.
	JSON Codec = jsonCodec{}
	// Proto is protobuf's binary encoding; values must be generated message
	// pointers, such as *pb.HostRecord.
	Proto Codec = protoCodec{}
	// Text is the payload as text: a string or []byte as it is; an integer,
	// float or bool in Go's decimal syntax (surrounding white space ignored
	// when decoding); an encoding.TextMarshaler/TextUnmarshaler; struct{}
	// as nothing (any payload decodes to it). It suits methods that a person
	// calls with the nats CLI or `troupe call`.
	Text Codec = textCodec{}
)

type jsonCodec struct{}

func (jsonCodec) Name() string                  { return "json" }
func (jsonCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	return json.Unmarshal(data, v)
}

type protoCodec struct{}

func (protoCodec) Name() string { return "protobuf" }

func (protoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("protobuf codec: %T is not a proto.Message", v)
	}
	return proto.Marshal(m)
}

// Unmarshal decodes into a message, or into a pointer to a message pointer
// (the usual case: a typed method's value is the message pointer itself),
// allocating the message.
func (protoCodec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() && rv.Elem().Kind() == reflect.Pointer {
		if m, ok := reflect.New(rv.Elem().Type().Elem()).Interface().(proto.Message); ok {
			if err := proto.Unmarshal(data, m); err != nil {
				return err
			}
			rv.Elem().Set(reflect.ValueOf(m))
			return nil
		}
	}
	return fmt.Errorf("protobuf codec: cannot decode into %T", v)
}

type textCodec struct{}

func (textCodec) Name() string { return "text" }

func (textCodec) Marshal(v any) ([]byte, error) {
	switch x := v.(type) {
	case encoding.TextMarshaler:
		return x.MarshalText()
	case string:
		return []byte(x), nil
	case []byte:
		return x, nil
	case struct{}:
		return nil, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(nil, rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(nil, rv.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return strconv.AppendFloat(nil, rv.Float(), 'g', -1, rv.Type().Bits()), nil
	case reflect.Bool:
		return strconv.AppendBool(nil, rv.Bool()), nil
	case reflect.String:
		return []byte(rv.String()), nil
	}
	return nil, fmt.Errorf("text codec: cannot encode %T", v)
}

func (textCodec) Unmarshal(data []byte, v any) error {
	switch x := v.(type) {
	case encoding.TextUnmarshaler:
		return x.UnmarshalText(data)
	case *string:
		*x = string(data)
		return nil
	case *[]byte:
		*x = append([]byte(nil), data...)
		return nil
	case *struct{}:
		return nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("text codec: cannot decode into %T", v)
	}
	e := rv.Elem()
	s := strings.TrimSpace(string(data))
	switch e.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, e.Type().Bits())
		if err != nil {
			return &FormatError{Want: "a decimal integer", Got: data}
		}
		e.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, e.Type().Bits())
		if err != nil {
			return &FormatError{Want: "a non-negative decimal integer", Got: data}
		}
		e.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, e.Type().Bits())
		if err != nil {
			return &FormatError{Want: "a decimal number", Got: data}
		}
		e.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return &FormatError{Want: "true or false", Got: data}
		}
		e.SetBool(b)
	case reflect.String:
		e.SetString(string(data))
	default:
		return fmt.Errorf("text codec: cannot decode into %T", v)
	}
	return nil
}

// FormatError is a payload that is not in the form a codec wants.
type FormatError struct {
	Want string // what the codec wants, such as "a decimal integer"
	Got  []byte
}

func (e *FormatError) Error() string { return fmt.Sprintf("want %s, got %q", e.Want, e.Excerpt()) }

// Excerpt is the start of the payload, for a message.
func (e *FormatError) Excerpt() string { return truncate(e.Got) }

// truncate shortens a payload quoted in an error message.
func truncate(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}
