package devnode

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

func resourceQuantity(s string) resource.Quantity { return resource.MustParse(s) }

// container returns the container's shell state, building it from the pod on first use: its
// environment (values, Secret and ConfigMap references, the downward API's common fields) and
// a filesystem with its Secret, ConfigMap and emptyDir volumes. The state lives as long as the
// node and the pod (the key includes the pod's UID).
func (n *Node) container(ctx context.Context, ns, name, containerName string) (*container, error) {
	pod, err := n.o.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", ns, name, err)
	}
	key := string(pod.UID) + "/" + containerName
	n.mu.Lock()
	c, ok := n.containers[key]
	n.mu.Unlock()
	if ok {
		return c, nil
	}
	var spec *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == containerName {
			spec = &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == containerName {
			spec = &pod.Spec.InitContainers[i]
		}
	}
	if spec == nil {
		for i := range pod.Spec.EphemeralContainers {
			if pod.Spec.EphemeralContainers[i].Name == containerName {
				ec := corev1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
				spec = &ec
			}
		}
	}
	if spec == nil {
		return nil, fmt.Errorf("container %q not found in pod %s/%s", containerName, ns, name)
	}
	c, err = n.buildContainer(ctx, pod, spec)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if existing, ok := n.containers[key]; ok {
		return existing, nil
	}
	n.containers[key] = c
	return c, nil
}

func (n *Node) buildContainer(ctx context.Context, pod *corev1.Pod, spec *corev1.Container) (*container, error) {
	c := &container{
		fs:       newMemFS(n.o.FSLimit),
		hostname: pod.Name,
		workDir:  spec.WorkingDir,
		command:  append(append([]string{}, spec.Command...), spec.Args...),
	}
	if c.workDir == "" {
		c.workDir = "/"
	}
	env, err := n.environment(ctx, pod, spec)
	if err != nil {
		return nil, err
	}
	c.env = env
	_ = c.fs.putFile("/etc/hostname", []byte(pod.Name+"\n"), true)
	_ = c.fs.putFile("/etc/hosts", []byte("127.0.0.1\tlocalhost\n127.0.0.1\t"+pod.Name+"\n"), true)
	_ = c.fs.putFile("/etc/os-release", []byte("NAME=\"Gatehouse dev node\"\nID=gatehouse-devnode\nPRETTY_NAME=\"Gatehouse dev node (built-in shell, in-memory filesystem)\"\n"), true)
	_ = c.fs.putFile("/etc/passwd", []byte("nobody:x:65534:65534:nobody:/:/bin/sh\n"), true)
	if err := c.fs.MkdirAll(c.workDir); err != nil {
		return nil, err
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range spec.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			continue
		}
		if err := n.mount(ctx, c.fs, pod, v, m); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// mount lays out a volume's files under the mount path. Secret, ConfigMap and projected
// volumes are read through the API and read-only, as the kubelet mounts them; emptyDir is an
// empty writable directory; anything else (hostPath above all) is an empty read-only
// directory: the dev node never exposes the machine it runs on.
func (n *Node) mount(ctx context.Context, fs *memFS, pod *corev1.Pod, v corev1.Volume, m corev1.VolumeMount) error {
	dir := path.Clean("/" + m.MountPath)
	put := func(files map[string][]byte, items []corev1.KeyToPath) error {
		if len(items) > 0 {
			selected := map[string][]byte{}
			for _, it := range items {
				if data, ok := files[it.Key]; ok {
					selected[it.Path] = data
				}
			}
			files = selected
		}
		if err := fs.mkdirAll(dir, false); err != nil {
			return err
		}
		for name, data := range files {
			if err := fs.putFile(path.Join(dir, name), data, true); err != nil {
				return err
			}
		}
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if d, err := fs.lookup(dir); err == nil {
			d.readOnly = true
		}
		return nil
	}
	switch {
	case v.Secret != nil:
		data, err := n.secretData(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Optional)
		if err != nil {
			return err
		}
		return put(data, v.Secret.Items)
	case v.ConfigMap != nil:
		data, err := n.configMapData(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Optional)
		if err != nil {
			return err
		}
		return put(data, v.ConfigMap.Items)
	case v.Projected != nil:
		all := map[string][]byte{}
		for _, s := range v.Projected.Sources {
			var data map[string][]byte
			var items []corev1.KeyToPath
			var err error
			switch {
			case s.Secret != nil:
				data, err = n.secretData(ctx, pod.Namespace, s.Secret.Name, s.Secret.Optional)
				items = s.Secret.Items
			case s.ConfigMap != nil:
				data, err = n.configMapData(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Optional)
				items = s.ConfigMap.Items
			default:
				continue // service-account tokens and the downward API are not projected here
			}
			if err != nil {
				return err
			}
			if len(items) > 0 {
				for _, it := range items {
					if d, ok := data[it.Key]; ok {
						all[it.Path] = d
					}
				}
				continue
			}
			for k, d := range data {
				all[k] = d
			}
		}
		return put(all, nil)
	case v.EmptyDir != nil:
		return fs.mkdirAll(dir, false)
	default:
		return put(map[string][]byte{}, nil)
	}
}

func (n *Node) secretData(ctx context.Context, ns, name string, optional *bool) (map[string][]byte, error) {
	s, err := n.o.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional != nil && *optional {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", ns, name, err)
	}
	return s.Data, nil
}

func (n *Node) configMapData(ctx context.Context, ns, name string, optional *bool) (map[string][]byte, error) {
	cm, err := n.o.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional != nil && *optional {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configmap %s/%s: %w", ns, name, err)
	}
	out := map[string][]byte{}
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	return out, nil
}

// environment is the container's environment as the kubelet would set it (without service
// links), plus PATH, HOME and HOSTNAME.
func (n *Node) environment(ctx context.Context, pod *corev1.Pod, spec *corev1.Container) ([]string, error) {
	vars := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", "HOSTNAME": pod.Name}
	for _, from := range spec.EnvFrom {
		var data map[string][]byte
		var err error
		switch {
		case from.SecretRef != nil:
			data, err = n.secretData(ctx, pod.Namespace, from.SecretRef.Name, from.SecretRef.Optional)
		case from.ConfigMapRef != nil:
			data, err = n.configMapData(ctx, pod.Namespace, from.ConfigMapRef.Name, from.ConfigMapRef.Optional)
		}
		if err != nil {
			return nil, err
		}
		for k, v := range data {
			vars[from.Prefix+k] = string(v)
		}
	}
	for _, e := range spec.Env {
		switch {
		case e.ValueFrom == nil:
			vars[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			data, err := n.secretData(ctx, pod.Namespace, ref.Name, ref.Optional)
			if err != nil {
				return nil, err
			}
			if v, ok := data[ref.Key]; ok {
				vars[e.Name] = string(v)
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			data, err := n.configMapData(ctx, pod.Namespace, ref.Name, ref.Optional)
			if err != nil {
				return nil, err
			}
			if v, ok := data[ref.Key]; ok {
				vars[e.Name] = string(v)
			}
		case e.ValueFrom.FieldRef != nil:
			vars[e.Name] = fieldValue(pod, e.ValueFrom.FieldRef.FieldPath)
		}
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

func fieldValue(pod *corev1.Pod, field string) string {
	switch field {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "metadata.uid":
		return string(pod.UID)
	case "spec.nodeName":
		return pod.Spec.NodeName
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName
	case "status.podIP", "status.hostIP":
		return "127.0.0.1"
	}
	if k, ok := strings.CutPrefix(field, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(k, "']")]
	}
	if k, ok := strings.CutPrefix(field, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(k, "']")]
	}
	return ""
}

// runPods binds pods without a node to this one, marks them Running and completes their
// deletion, until ctx ends.
func (n *Node) runPods(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(n.o.Client, 10*time.Minute)
	inf := factory.Core().V1().Pods().Informer()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName]())
	enqueue := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			queue.Add(types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	factory.Start(ctx.Done())
	go func() { <-ctx.Done(); queue.ShutDown() }()
	lister := factory.Core().V1().Pods().Lister()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		for {
			key, quit := queue.Get()
			if quit {
				return
			}
			pod, err := lister.Pods(key.Namespace).Get(key.Name)
			if err == nil {
				err = n.reconcilePod(ctx, pod)
			} else if apierrors.IsNotFound(err) {
				err = nil
			}
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				n.log.Warn("dev node: pod not reconciled", "pod", key.String(), "err", err)
				queue.AddRateLimited(key)
			} else if apierrors.IsConflict(err) {
				queue.AddRateLimited(key)
			} else {
				queue.Forget(key)
			}
			queue.Done(key)
		}
	}, time.Second)
}

func (n *Node) reconcilePod(ctx context.Context, pod *corev1.Pod) error {
	pods := n.o.Client.CoreV1().Pods(pod.Namespace)
	switch {
	case pod.DeletionTimestamp != nil && (pod.Spec.NodeName == n.Name || pod.Spec.NodeName == ""):
		zero := int64(0)
		uid := pod.UID
		err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err == nil {
			n.forget(pod)
		}
		return err
	case pod.Spec.NodeName == "":
		return pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: n.Name},
		}, metav1.CreateOptions{})
	case pod.Spec.NodeName == n.Name && (pod.Status.Phase == "" || pod.Status.Phase == corev1.PodPending):
		if _, err := n.setRunning(ctx, pod); err != nil {
			return err
		}
		for _, c := range pod.Spec.Containers {
			n.AppendLog(pod.Namespace, pod.Name, c.Name, fmt.Sprintf("%s container %q started on the Gatehouse dev node (image %s is not run; exec gets a built-in shell)\n",
				time.Now().UTC().Format(time.RFC3339), c.Name, c.Image))
		}
		return nil
	}
	return nil
}

func (n *Node) forget(pod *corev1.Pod) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k := range n.containers {
		if strings.HasPrefix(k, string(pod.UID)+"/") {
			delete(n.containers, k)
		}
	}
}
