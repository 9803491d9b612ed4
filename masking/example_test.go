package masking_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/gatehouse-dev/gatehouse/masking"
)

func ExampleMasker_JSON() {
	m, err := masking.New(masking.Config{Key: masking.Key("example-key-not-for-production")})
	if err != nil {
		panic(err)
	}
	secret := `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"aHVudGVyMg=="}}`
	out, st, err := m.JSON(nil, []byte(secret), masking.Target{Version: "v1", Resource: "secrets"})
	if err != nil {
		panic(err) // a real caller answers 502 and forwards nothing
	}
	fmt.Println(string(out))
	fmt.Println(st.Fields, st.Detectors)
	// Output:
	// {"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"Z2F0ZWhvdXNlOm1hc2tlZDo3OTg4ZmJhYmZmMzY="}}
	// 1 map[secret-data:1]
}

func ExampleMasker_Text() {
	m, err := masking.New(masking.Config{Key: masking.Key("example-key-not-for-production")})
	if err != nil {
		panic(err)
	}
	out, st := m.Text(nil, []byte("connecting to postgres://app:hunter2@db:5432/app\n"))
	fmt.Print(string(out))
	fmt.Println(st.Detectors)
	// Output:
	// connecting to postgres://app:gatehouse:masked:7988fbabff36@db:5432/app
	// map[url-password:1]
}

func ExampleMasker_WatchStream() {
	m, err := masking.New(masking.Config{Key: masking.Key("example-key-not-for-production")})
	if err != nil {
		panic(err)
	}
	upstream := strings.NewReader(`{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"stringData":{"password":"hunter2"}}}` + "\n")
	r := m.WatchStream(upstream, masking.Target{Version: "v1", Resource: "secrets"})
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		panic(err) // a real caller ends the watch
	}
	fmt.Print(string(out))
	fmt.Println(r.Stats().Fields)
	// Output:
	// {"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"stringData":{"password":"gatehouse:masked:7988fbabff36"}}}
	// 1
}
