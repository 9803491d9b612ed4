package authn

import (
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/apis/apiserver/install"
	apiservervalidation "k8s.io/apiserver/pkg/apis/apiserver/validation"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// LoadAuthenticationConfig reads a structured authentication configuration file, the format
// kube-apiserver reads with --authentication-config (apiserver.config.k8s.io/v1, v1beta1 or
// v1alpha1, kind AuthenticationConfiguration), and validates it as kube-apiserver does, CEL
// expressions included. Only the jwt authenticators are used (anonymous settings are ignored:
// Gatehouse always requires a token). Gatehouse refuses, besides:
//   - claimMappings.extra keys under gatehouse.dev or its subdomains: Gatehouse's own extras,
//     which only it sets;
//   - issuer.egressSelectorType: Gatehouse has no egress selector configuration, and
//     kube-apiserver refuses the field too when it has none.
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
	if err := validateConfig(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// validateConfig validates cfg as kube-apiserver does, and then as Gatehouse needs it.
func validateConfig(cfg *apiserver.AuthenticationConfiguration) error {
	errs := apiservervalidation.ValidateAuthenticationConfiguration(authenticationcel.NewDefaultCompiler(), cfg, nil)
	for i, j := range cfg.JWT {
		p := field.NewPath("jwt").Index(i)
		for k, m := range j.ClaimMappings.Extra {
			if identity.IsReserved(m.Key) {
				errs = append(errs, field.Invalid(p.Child("claimMappings", "extra").Index(k).Child("key"), m.Key,
					identity.ReservedDomain+" and its subdomains are reserved for Gatehouse's own extras"))
			}
		}
		if j.Issuer.EgressSelectorType != "" {
			errs = append(errs, field.Invalid(p.Child("issuer", "egressSelectorType"), j.Issuer.EgressSelectorType,
				"Gatehouse has no egress selector configuration; it reaches issuers directly (or through IssuerClients)"))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid authentication configuration: %w", errs.ToAggregate())
	}
	if len(cfg.JWT) == 0 {
		return fmt.Errorf("invalid authentication configuration: no jwt authenticators")
	}
	return nil
}
