//! Rules about the live estate as a whole: the hosts, VMs and endpoints behind the targets.

pub mod warn_101;
