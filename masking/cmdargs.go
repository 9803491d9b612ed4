package masking

import "bytes"

// This file holds the detectors declared by where commands take a password among their
// arguments: the value of a flag (ldapsearch -w password, smbclient -U user%password) or a
// positional argument after a subcommand (rabbitmqctl add_user user password). They read a
// command's words as the finders of cmdline.go do.

// passwordArgs says where some commands take a password among their arguments.
type passwordArgs struct {
	commands []string // the names of the commands

	// flags, when set, are the flags whose value is the password, with their dashes (-w,
	// --user); a long flag's value follows a blank or '='.
	flags []string
	// after, when not 0, is the byte the password follows in the flag's value (user%password);
	// a value without it is a user name alone, and the command asks for the password.
	after byte
	// joined: the value may follow a one-letter flag in its word (-wS3cret), as getopt reads
	// it. joinedOnly: only so (7-Zip's -p alone asks for the password).
	joined, joinedOnly bool

	// Without flags: the password is a positional argument of one of subcommands.
	subcommands []subcommand
}

// subcommand is a command's subcommand that takes a password as its arg-th positional
// argument (from 0): rabbitmqctl add_user user password, mc alias set alias url key secret.
type subcommand struct {
	words []string // which follow each other among the command's words, after other words
	arg   int
}

// find appends to spans, under id, the passwords the commands take as a describes.
func (a *passwordArgs) find(text []byte, id int, spans []span) []span {
	for _, name := range a.commands {
		spans = findCommands(text, name, spans, func(r *wordReader, spans []span) []span {
			if a.flags != nil {
				return a.flagValues(r, id, spans)
			}
			return a.positional(r, id, spans)
		})
	}
	return spans
}

// flagValues finds the passwords in the values of a's flags among the words of r.
func (a *passwordArgs) flagValues(r *wordReader, id int, spans []span) []span {
	text := r.text
	w, ok := r.next()
	for ok {
		vs, ve, read := a.flagValue(r, w)
		if vs < 0 {
			// Not a flag of a's, or one without a value, after which flagValue may have read
			// the next word.
			if read.end > read.start {
				w = read
			} else {
				w, ok = r.next()
			}
			continue
		}
		// The value is shaped when a flag or the command's end follows it.
		next, nok := r.next()
		shaped := nok && next.isFlag(text) || !nok && atCommandEnd(r)
		if a.after != 0 {
			k := bytes.IndexByte(text[vs:ve], a.after)
			if k < 0 {
				vs = -1 // a user name alone
			} else {
				vs, ve = unquoted(text, vs+k+1, ve)
			}
		}
		if vs >= 0 && commandPassword(text, w, vs, ve, shaped) {
			spans = append(spans, span{vs, ve, id})
		}
		w, ok = next, nok
	}
	return spans
}

// flagValue returns the bounds of the value of word w when it is one of a's flags with a
// value: in w after '=' or the flag's letter, or the next word. Otherwise it returns -1 and,
// when it read the next word to find it was a flag, that word.
func (a *passwordArgs) flagValue(r *wordReader, w cmdWord) (vs, ve int, read cmdWord) {
	text := r.text
	if !w.isFlag(text) {
		return -1, -1, cmdWord{}
	}
	raw := w.raw(text)
	for _, f := range a.flags {
		switch {
		case string(raw) == f && !a.joinedOnly:
			nw, ok := r.next()
			if !ok {
				return -1, -1, cmdWord{}
			}
			if nw.isFlag(text) {
				return -1, -1, nw // a flag, not a value: the command asks for the password
			}
			return nw.vs, nw.ve, cmdWord{}
		case len(f) > 2 && f[1] == '-' && len(raw) > len(f) && string(raw[:len(f)]) == f && raw[len(f)] == '=':
			vs, ve = unquoted(text, w.start+len(f)+1, w.end)
			return vs, ve, cmdWord{}
		case a.joined && len(f) == 2 && len(raw) > 2 && raw[1] == f[1]:
			vs, ve = unquoted(text, w.start+2, w.end)
			return vs, ve, cmdWord{}
		}
	}
	return -1, -1, cmdWord{}
}

// positional finds the password one of a's subcommands takes as a positional argument among
// the words of r. Flags are read as words of their own.
func (a *passwordArgs) positional(r *wordReader, id int, spans []span) []span {
	text := r.text
	var sub *subcommand
	matched, arg := 0, 0
	for {
		w, ok := r.next()
		if !ok {
			return spans
		}
		if w.isFlag(text) {
			continue
		}
		raw := w.raw(text)
		switch {
		case sub == nil:
			for k := range a.subcommands {
				if string(raw) == a.subcommands[k].words[0] {
					sub, matched = &a.subcommands[k], 1
					break
				}
			}
			continue
		case matched < len(sub.words):
			if string(raw) != sub.words[matched] {
				return spans // another subcommand
			}
			matched++
			continue
		case arg < sub.arg:
			arg++
			continue
		}
		if commandPassword(text, w, w.vs, w.ve, endsAfter(r)) {
			spans = append(spans, span{w.vs, w.ve, id})
		}
		return spans
	}
}
