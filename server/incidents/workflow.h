// The incident state machine and the analyst's edits, as pure functions on an Incident.
// Each records a timeline entry with actor and time; none reads a clock.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/incidents/model.h"
#include "server/incidents/taxonomy.h"

namespace siper::incidents {

// The transition table: new -> triage -> investigating -> contained -> eradicated ->
// recovered -> closed; any open state may close (e.g. a false positive found in triage);
// closed reopens to triage or investigating.
const std::vector<State>& AllowedNext(State from);
bool IsAllowedTransition(State from, State to);

// Moves `incident` to `to`. Closing needs a resolution other than kNone; other moves refuse
// one. An illegal move is refused with the allowed next states named. Reopening (closed ->
// triage/investigating) clears resolution and close time and is recorded as "reopened".
[[nodiscard]] absl::Status Transition(Incident& incident, State to, const std::string& actor,
                                      absl::Time now, Resolution resolution = Resolution::kNone,
                                      const std::string& reason = "");

// Records a state or severity as reached at `now` (first time only). Used at creation.
void MarkEntered(Incident& incident, State state, absl::Time now);
void MarkSeverity(Incident& incident, Severity severity, absl::Time now);

[[nodiscard]] absl::Status SetSeverity(Incident& incident, Severity severity,
                                       const std::string& actor, absl::Time now);
// Validated against the taxonomy; the message names the valid classes or types.
[[nodiscard]] absl::Status SetClassification(Incident& incident, const Taxonomy& taxonomy,
                                             const std::string& rsit_class,
                                             const std::string& rsit_type, const std::string& actor,
                                             absl::Time now);
void SetTlp(Incident& incident, Tlp tlp, const std::string& actor, absl::Time now);
void Assign(Incident& incident, const std::string& assignee, const std::string& actor,
            absl::Time now);
[[nodiscard]] absl::Status AddNote(Incident& incident, const std::string& text,
                                   const std::string& actor, absl::Time now);
void AddAction(Incident& incident, const std::string& action, const std::string& actor,
               absl::Time now);
void SetImpact(Incident& incident, const std::string& impact, const std::string& actor,
               absl::Time now);
// Sets asset criticality (1..5) and recomputes the risk score.
[[nodiscard]] absl::Status SetAssetCriticality(Incident& incident, int criticality,
                                               const std::string& actor, absl::Time now);
// Records the report to USOM (time it was sent and USOM's reference number).
[[nodiscard]] absl::Status RecordUsomReport(Incident& incident, absl::Time sent,
                                            const std::string& reference, const std::string& actor,
                                            absl::Time now);
// Flags (or unflags) a personal-data breach; the KVKK 72-hour clock runs from detection.
void SetPersonalDataBreach(Incident& incident, bool breach, const std::string& actor,
                           absl::Time now);
// Records a notice to the KVKK Board. The first notice must be kFirst and later ones
// kFollowUp; a notice sent after `deadline` needs delay reasons (given here or earlier).
[[nodiscard]] absl::Status RecordKvkkNotice(Incident& incident, NoticeKind kind, absl::Time sent,
                                            const std::string& reference,
                                            const std::vector<std::string>& delay_reasons,
                                            absl::Time deadline, const std::string& actor,
                                            absl::Time now);

// Replaces the descriptive KVKK fields (times, source, data, counts, consequences,
// measures, subjects informed) from `details`; the flag, notices and delay reasons are left
// to SetPersonalDataBreach and RecordKvkkNotice. Counts must be -1 (unknown) or more.
[[nodiscard]] absl::Status UpdateKvkkDetails(Incident& incident, const KvkkBreach& details,
                                             const std::string& actor, absl::Time now);
// An observable the analyst adds by hand (it is kept when alerts are detached).
[[nodiscard]] absl::Status AddObservable(Incident& incident, ObservableKind kind,
                                         const std::string& value, const std::string& actor,
                                         absl::Time now);

void AddTimeline(Incident& incident, absl::Time time, const std::string& actor,
                 const std::string& kind, const std::string& text);

}  // namespace siper::incidents
