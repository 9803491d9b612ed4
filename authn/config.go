package authn

import (
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/apis/apiserver/install"
	apiservervalidation "k8s.io/apiserver/pkg/apis/apiserver/validation"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
)

// LoadAuthenticationConfig reads a structured authentication configuration file, the format
// kube-apiserver reads with --authentication-config (apiserver.config.k8s.io/v1, v1beta1 or
// v1alpha1, kind AuthenticationConfiguration), and validates it as kube-apiserver does, CEL
// expressions included. Only the jwt authenticators are used.
func LoadAuthenticationConfig(path string) (*apiserver.AuthenticationConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read authentication configuration: %w", err)
	}
	return ParseAuthenticationConfig(data)
}

// ParseAuthenticationConfig is LoadAuthenticationConfig for data in memory.
func ParseAuthenticationConfig(data []byte) (*apiserver.AuthenticationConfiguration, error) {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	obj, gvk, err := codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decode authentication configuration: %w", err)
	}
	cfg, ok := obj.(*apiserver.AuthenticationConfiguration)
	if !ok {
		return nil, fmt.Errorf("decode authentication configuration: got %s, want kind AuthenticationConfiguration", gvk)
	}
	if errs := apiservervalidation.ValidateAuthenticationConfiguration(authenticationcel.NewDefaultCompiler(), cfg, nil); len(errs) > 0 {
		return nil, fmt.Errorf("invalid authentication configuration: %w", errs.ToAggregate())
	}
	if len(cfg.JWT) == 0 {
		return nil, fmt.Errorf("invalid authentication configuration: no jwt authenticators")
	}
	return cfg, nil
}
