package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// doctorListLimit bounds every list doctor makes (ServiceAccounts of a namespace, webhook
// configurations, endpoint slices, OIDC providers are bounded by IAM's quota of 100).
const doctorListLimit = 500

// gatherer collects doctor's facts; each call has its own deadline, and a failed call
// becomes a fact ("could not find out"), never the end of the diagnosis.
type gatherer struct {
	opts    doctorOptions
	timeout time.Duration
}

func (g gatherer) call(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	return f(cctx)
}

// gather reads the cluster (and, when the ServiceAccount names a role, AWS). Only an error
// that leaves nothing to diagnose (the pod does not exist) is returned.
func (g gatherer) gather(ctx context.Context, cfg *rest.Config, isPod bool, name string) (doctor.Facts, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return doctor.Facts{}, fmt.Errorf("create Kubernetes client: %w", err)
	}
	ns := g.opts.namespace
	f := doctor.Facts{Namespace: ns, Defaults: g.opts.defaults, ServiceAccountName: name}
	if isPod {
		var pod *corev1.Pod
		err := g.call(ctx, func(c context.Context) (err error) {
			pod, err = cs.CoreV1().Pods(ns).Get(c, name, metav1.GetOptions{})
			return err
		})
		if err != nil {
			return f, fmt.Errorf("get pod %s/%s: %w", ns, name, err)
		}
		f.Pod = pod
		f.ServiceAccountName = pod.Spec.ServiceAccountName
		if f.ServiceAccountName == "" {
			f.ServiceAccountName = "default"
		}
	}
	f.NamespaceErr = g.call(ctx, func(c context.Context) error {
		n, err := cs.CoreV1().Namespaces().Get(c, ns, metav1.GetOptions{})
		if err == nil {
			f.NamespaceLabels = n.Labels
		}
		return err
	})
	f.ServiceAccountErr = g.call(ctx, func(c context.Context) error {
		sa, err := cs.CoreV1().ServiceAccounts(ns).Get(c, f.ServiceAccountName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			f.ServiceAccount = sa
			f.ServiceAccountChanged = doctor.LastChanged(sa.ObjectMeta)
		}
		return err
	})
	_ = g.call(ctx, func(c context.Context) error {
		list, err := cs.CoreV1().ServiceAccounts(ns).List(c, metav1.ListOptions{Limit: doctorListLimit})
		if err != nil {
			return err
		}
		for _, sa := range list.Items {
			if _, ok := sa.Annotations[irsa.Key(f.Defaults.AnnotationPrefix, irsa.RoleARNAnnotation)]; ok {
				f.Annotated = append(f.Annotated, sa.Name)
			}
		}
		return nil
	})
	f.Webhooks, f.WebhooksErr = g.webhooks(ctx, cs)
	f.IssuerErr = g.call(ctx, func(c context.Context) (err error) {
		f.Issuer, err = serviceaccount.DiscoverIssuer(c, cs.Discovery().RESTClient())
		return err
	})
	if s, ok := doctor.Expected(f); ok {
		g.gatherAWS(ctx, &f, s)
	}
	return f, nil
}

// webhooks lists the IRSA mutating webhooks (by --webhook-name) and probes each one.
func (g gatherer) webhooks(ctx context.Context, cs kubernetes.Interface) ([]doctor.Webhook, error) {
	var out []doctor.Webhook
	err := g.call(ctx, func(c context.Context) error {
		list, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(c, metav1.ListOptions{Limit: doctorListLimit})
		if err != nil {
			return fmt.Errorf("list mutating webhook configurations: %w", err)
		}
		for _, cfg := range list.Items {
			for _, w := range cfg.Webhooks {
				if !slices.Contains(g.opts.webhookNames, w.Name) {
					continue
				}
				out = append(out, doctor.Webhook{Configuration: cfg.Name, Name: w.Name, Rules: w.Rules,
					NamespaceSelector: w.NamespaceSelector, ObjectSelector: w.ObjectSelector, Target: target(w.ClientConfig)})
				g.probe(ctx, cs, w.ClientConfig, &out[len(out)-1])
			}
		}
		return nil
	})
	return out, err
}

func target(cc admissionregistrationv1.WebhookClientConfig) string {
	if cc.URL != nil {
		return *cc.URL
	}
	if s := cc.Service; s != nil {
		port := int32(443)
		if s.Port != nil {
			port = *s.Port
		}
		return fmt.Sprintf("service %s/%s:%d", s.Namespace, s.Name, port)
	}
	return "(no client config)"
}

// probe checks that the webhook answers: a TLS request to its URL (trusting its caBundle;
// any HTTP answer counts), or ready endpoints behind its Service.
func (g gatherer) probe(ctx context.Context, cs kubernetes.Interface, cc admissionregistrationv1.WebhookClientConfig, w *doctor.Webhook) {
	if cc.URL != nil {
		pool := x509.NewCertPool()
		if len(cc.CABundle) > 0 && !pool.AppendCertsFromPEM(cc.CABundle) {
			w.AnswerErr, w.AnswerDefinite = errors.New("its caBundle holds no PEM certificate"), true
			return
		}
		if len(cc.CABundle) == 0 {
			pool = nil // the system roots, as the API server would use
		}
		client := &http.Client{Timeout: g.timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		w.AnswerErr = g.call(ctx, func(c context.Context) error {
			req, err := http.NewRequestWithContext(c, http.MethodGet, *cc.URL, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			return resp.Body.Close()
		})
		client.CloseIdleConnections()
		return
	}
	s := cc.Service
	if s == nil {
		w.AnswerErr, w.AnswerDefinite = errors.New("it has neither a URL nor a service"), true
		return
	}
	w.AnswerErr = g.call(ctx, func(c context.Context) error {
		list, err := cs.DiscoveryV1().EndpointSlices(s.Namespace).List(c, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + s.Name, Limit: doctorListLimit})
		if err != nil {
			return fmt.Errorf("list endpoint slices of service %s/%s: %w", s.Namespace, s.Name, err)
		}
		for _, sl := range list.Items {
			for _, e := range sl.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					return nil
				}
			}
		}
		w.AnswerDefinite = true
		return fmt.Errorf("service %s/%s has no ready endpoints", s.Namespace, s.Name)
	})
}

// gatherAWS asks AWS what STS and the service will check: the caller's account, the OIDC
// provider for the issuer, the role's trust policy and, with --action, its permissions.
func (g gatherer) gatherAWS(ctx context.Context, f *doctor.Facts, s irsa.Settings) {
	var cfg aws.Config
	err := g.call(ctx, func(c context.Context) (err error) { cfg, err = awsiam.LoadConfig(c, ""); return err })
	if err != nil {
		f.CallerErr, f.ProviderErr = err, err
		v := serviceaccount.Verdict{Result: trustpolicy.Undetermined, RoleARN: s.RoleARN, Reasons: []string{err.Error()}, Cause: err.Error()}
		f.Trust = &v
		if g.opts.action != "" {
			f.Simulation = &doctor.Simulation{Action: g.opts.action, Resource: g.opts.resource, Err: err}
		}
		return
	}
	f.CallerErr = g.call(ctx, func(c context.Context) (err error) { f.CallerAccount, err = awsiam.CallerAccount(c, cfg); return err })
	client := awsiam.NewIAMClient(cfg)
	if f.Issuer != "" {
		f.ProviderErr = g.call(ctx, func(c context.Context) error { return findProvider(c, client, f) })
	}
	src, err := awsiam.New(ctx, awsiam.Options{Client: client, AccountID: f.CallerAccount, CallTimeout: g.timeout})
	if err == nil {
		var v serviceaccount.Verdict
		_ = g.call(ctx, func(c context.Context) error {
			v = serviceaccount.Verify(c, src, trustpolicy.Request{RoleARN: s.RoleARN, IssuerURL: f.Issuer, Namespace: f.Namespace, ServiceAccount: f.ServiceAccountName, Audience: s.Audience})
			return nil
		})
		f.Trust = &v
	}
	if g.opts.action != "" {
		sim := &doctor.Simulation{Action: g.opts.action, Resource: g.opts.resource}
		sim.Err = g.call(ctx, func(c context.Context) error {
			out, err := client.SimulatePrincipalPolicy(c, &iam.SimulatePrincipalPolicyInput{
				PolicySourceArn: aws.String(s.RoleARN), ActionNames: []string{g.opts.action}, ResourceArns: []string{g.opts.resource},
			})
			if err != nil {
				return fmt.Errorf("simulate principal policy: %w", err)
			}
			if len(out.EvaluationResults) == 0 {
				return errors.New("simulate principal policy: IAM returned no evaluation result")
			}
			r := out.EvaluationResults[0]
			sim.Decision = string(r.EvalDecision)
			for _, st := range r.MatchedStatements {
				if id := aws.ToString(st.SourcePolicyId); id != "" && !slices.Contains(sim.MatchedPolicies, id) {
					sim.MatchedPolicies = append(sim.MatchedPolicies, id)
				}
			}
			return nil
		})
		f.Simulation = sim
	}
}

// findProvider looks up the IAM OIDC provider of the issuer among the caller account's.
func findProvider(ctx context.Context, client *iam.Client, f *doctor.Facts) error {
	path, err := trustpolicy.IssuerPath(f.Issuer)
	if err != nil {
		return fmt.Errorf("find the OIDC provider of the cluster's issuer: %w", err)
	}
	want := ":oidc-provider/" + path
	list, err := client.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
	if err != nil {
		return fmt.Errorf("list OIDC providers: %w", err)
	}
	for _, p := range list.OpenIDConnectProviderList {
		arn := aws.ToString(p.Arn)
		if !strings.HasSuffix(arn, want) {
			continue
		}
		out, err := client.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(arn)})
		if err != nil {
			return fmt.Errorf("get OIDC provider %s: %w", arn, err)
		}
		f.Provider = &doctor.Provider{ARN: arn, ClientIDs: out.ClientIDList}
		return nil
	}
	return nil
}
